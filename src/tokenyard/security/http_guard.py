"""The HTTP guard: checks every request of the gateway app gets before any handler runs.

- Header size: more than ``limits.max_header_bytes`` of request headers in all is 431 (aiohttp's own per-line
  limit of 8190 bytes answers 400 before this).
- Path tricks: ``..`` segments, backslashes, NUL and other control characters, raw or percent-encoded, are 400,
  so no handler (static dashboard assets included) ever sees a traversal attempt.
- The admin API on its own listener (``admin.listen``): ``/admin/...`` only there, and nothing else there.
- Authentication and the east-west policy for ``/v1/...`` routes outside the inference chain (``/v1/models``,
  ``/v1/tools/{name}``, ``/v1/retrieve`` ...): tools are checked as ``tools``, other routes as ``routes``; an API
  key's own ``routes`` are checked here too (on the chain's paths by the auth stage).
- Audit: every admin request that changes something, and every refused admin credential.
- aiohttp's own 4xx (unknown path, wrong method) are answered in OpenAI's error format.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING
from urllib.parse import unquote

from aiohttp import web
from aiohttp.typedefs import Middleware

from tokenyard.gateway.errors import error_response
from tokenyard.security.service import PRINCIPAL, AuthFailure

if TYPE_CHECKING:
    from tokenyard.gateway.services import Gateway

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
CHAIN_PATHS = frozenset(("/v1/chat/completions", "/v1/completions", "/v1/embeddings"))
OPEN_V1_PATHS = frozenset(("/v1/models",))  # any authenticated caller; not subject to the east-west routes list
TOOLS_PREFIX = "/v1/tools/"
_BAD_PATH = re.compile(r"(^|/)\.\.?(/|$)|\\|[\x00-\x1f\x7f]")


def header_bytes(request: web.BaseRequest) -> int:
    """Bytes of the request's header block as received (name, ': ', value, CRLF per header)."""
    return sum(len(name) + len(value) + 4 for name, value in request.raw_headers)


def suspicious_path(raw_path: str) -> bool:
    """True for traversal and smuggling tricks in a request target, plain or percent-encoded (twice)."""
    if raw_path in CHAIN_PATHS:
        return False  # the inference paths, exactly (no query, no escapes): nothing to decode or look for
    path = raw_path.split("?", 1)[0]
    for _ in range(3):
        if _BAD_PATH.search(path):
            return True
        decoded = unquote(path)
        if decoded == path:
            return False
        path = decoded
    return True  # encoded three levels deep: nobody legitimate does that


def _local_port(request: web.Request) -> int | None:
    transport = request.transport
    sockname = transport.get_extra_info("sockname") if transport is not None else None
    return sockname[1] if isinstance(sockname, tuple) and len(sockname) >= 2 else None


def guard_middleware(gw: Gateway) -> Middleware:
    security = gw.security
    config = gw.config
    max_header = config.limits.max_header_bytes
    own_admin_listener = config.admin is not None and config.admin.listen is not None

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if header_bytes(request) > max_header:
            return error_response(431, f"request headers exceed the limit of {max_header} bytes",
                                  "headers_too_large")
        if suspicious_path(request.raw_path):
            return error_response(400, "request path not allowed", "invalid_path")
        path = request.path
        is_admin = path == "/admin" or path.startswith("/admin/")
        if own_admin_listener:
            on_admin = security.admin_port is not None and _local_port(request) == security.admin_port
            if is_admin != on_admin:
                return error_response(404, f"no route {path}", "not_found")
        if security.enabled and path.startswith("/v1/") and path not in CHAIN_PATHS:
            await security.refresh_signing_keys(request)
            denied = _authorise_route(gw, request, path)
            if denied is not None:
                return denied
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            response = error_response(exc.status, exc.reason, exc.reason.lower().replace(" ", "_"))
            if exc.status == 405:
                response.headers["Allow"] = exc.headers.get("Allow", "")
        if is_admin:
            _audit_admin(gw, request, response.status)
        return response

    return guard


def _authorise_route(gw: Gateway, request: web.Request, path: str) -> web.Response | None:
    security = gw.security
    try:
        principal = security.authenticate(request)
    except AuthFailure as exc:
        security.audit_failure(request, exc, request.headers.get("x-request-id", "")[:128])
        return error_response(401, exc.message, exc.code)
    request[PRINCIPAL] = principal
    refusal = security.route_refusal(request, principal, request.headers.get("x-request-id", "")[:128])
    if refusal is not None:
        return error_response(403, refusal, "route_not_allowed")
    if path in OPEN_V1_PATHS or path.startswith("/v1/streams/"):
        return None
    if path.startswith(TOOLS_PREFIX):
        kind, name = "tools", path[len(TOOLS_PREFIX):]
    else:
        kind, name = "routes", path
    decision = security.decide(principal, kind, name)
    if decision is not None and not decision.allowed:
        what = "tool" if kind == "tools" else "route"
        return error_response(403, f"identity {principal.identity.subject} may not call {what} {name!r} "
                                   "(east-west policy: default deny)", f"{what}_not_allowed")
    return None


def _audit_admin(gw: Gateway, request: web.Request, status: int) -> None:
    audit = gw.security.audit
    if status == 401:
        audit.auth_failure("admin credential refused", request.remote, request.path,
                           request.headers.get("x-request-id", "")[:128])
    elif request.method not in ("GET", "HEAD", "OPTIONS"):
        audit.admin_action(f"{request.method} {request.path}", actor="admin", status=status,
                           remote=request.remote)


def install_guard(app: web.Application, gw: Gateway) -> None:
    """Add the guard to ``app`` (before it starts) and ``GET /openapi.json``."""
    from tokenyard.gateway.openapi import add_openapi_route

    app.middlewares.append(guard_middleware(gw))
    add_openapi_route(app, gw.config.limits)
