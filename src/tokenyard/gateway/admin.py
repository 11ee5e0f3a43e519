"""The admin API: list in-flight requests, abort one.

Guarded as ``GatewayConfig.admin_mode`` says: the admin key (``admin.key`` in the config) when there is an
``admin`` section; open without one only when auth is off on a loopback-only listener; otherwise 403.
"""

from __future__ import annotations

import hashlib
import hmac
from time import monotonic

import msgspec
from aiohttp import web
from yarl import URL

from tokenyard.config.gateway import is_loopback
from tokenyard.gateway.errors import error_response
from tokenyard.gateway.services import Gateway

DISABLED_MESSAGE = ("the admin API is disabled: set admin.key (or admin.key_sha256) in the config; without an "
                    "admin section it is open only when auth is off and the gateway listens on loopback only")


def _local_caller(request: web.Request) -> bool:
    """The open admin API answers only a loopback peer, addressed to a loopback name (``Host``) and, when a browser
    sent it (``Origin``), from a loopback page: neither another host (whatever address the socket was bound to)
    nor a web page the operator visits (cross-site requests, DNS rebinding) can drive it."""
    if not is_loopback(request.remote or "") or not is_loopback(request.url.host or ""):
        return False
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    try:
        host = URL(origin).host
    except ValueError:
        return False
    return host is not None and is_loopback(host)


def _authorised(gw: Gateway, request: web.Request) -> web.Response | None:
    """None when the request may use the admin API; else the 401/403 answer."""
    mode = gw.config.admin_mode
    if mode == "open":
        if _local_caller(request):
            return None
        return error_response(403, "the open admin API (auth off, loopback listener) answers only requests to a "
                              "loopback host that no other site's page sent", "admin_not_local")
    admin = gw.config.admin
    if mode == "disabled" or admin is None or not admin.key_sha256:
        return error_response(403, DISABLED_MESSAGE, "admin_disabled")
    header = request.headers.get("Authorization", "")
    if header[:7].lower() != "bearer ":
        return error_response(401, "missing admin key", "missing_api_key")
    # surrogatepass: a header's non-UTF-8 bytes arrive as lone surrogates; they hash to no key (401), not a 500.
    digest = hashlib.sha256(header[7:].strip().encode("utf-8", "surrogatepass")).hexdigest()
    if not hmac.compare_digest(digest, admin.key_sha256.lower()):
        return error_response(401, "invalid admin key", "invalid_api_key")
    return None


def add_admin_routes(app: web.Application, gw: Gateway) -> None:
    async def list_requests(request: web.Request) -> web.Response:
        denied = _authorised(gw, request)
        if denied is not None:
            return denied
        now = monotonic()
        rows = [{
            "id": ctx.request_id, "tenant": ctx.tenant, "class": ctx.klass,
            "model": ctx.parsed.model if ctx.parsed is not None else "", "backend": ctx.backend,
            "stream": ctx.stream, "age_ms": round((now - ctx.started) * 1000, 1),
            "ttft_ms": round(ctx.ttft * 1000, 1) if ctx.ttft is not None else None,
        } for ctx in list(gw.inflight.values())]
        return web.Response(body=msgspec.json.encode({"requests": rows}), content_type="application/json")

    async def abort_request(request: web.Request) -> web.Response:
        denied = _authorised(gw, request)
        if denied is not None:
            return denied
        request_id = request.match_info["request_id"]
        ctx = gw.inflight.get(request_id)
        if ctx is None and gw.scaleout.aborts is not None:  # another replica may run it: ask them all
            remote = await gw.scaleout.aborts.abort(request_id)
            if remote is not None:
                return web.Response(body=msgspec.json.encode({"id": request_id, "aborted": remote}),
                                    content_type="application/json")
        if ctx is None:
            return error_response(404, f"no request {request_id!r} is in flight", "request_not_found")
        aborted = ctx.cancel("admin", monotonic())
        return web.Response(body=msgspec.json.encode({"id": request_id, "aborted": aborted}),
                            content_type="application/json")

    app.router.add_get("/admin/requests", list_requests)
    app.router.add_post("/admin/requests/{request_id}/abort", abort_request)
