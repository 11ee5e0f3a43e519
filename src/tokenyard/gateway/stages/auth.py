"""Auth: who is calling. API keys (config or key store), JWT service identities or mTLS client certificates.

An API key limited to some ``routes`` is refused here (403 ``route_not_allowed``, audited) on any other path.
Off only in the loopback "auth off" mode (no credential of any kind configured). Every failure is a 401 in
OpenAI's format, saying whether the credential was missing, unknown, revoked or expired, and is written to the
audit log (the reason and the caller's address, never the credential).

Once the caller is known, the request body is received here under ``timeouts.request_body_ms`` (slow-loris
bodies get 408) and ``limits.max_body_bytes`` (413): an unauthenticated client never makes the gateway buffer
a body, and no later stage waits on a trickling client. aiohttp keeps the bytes, so the validate stage's
``request.read()`` returns them at once.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from aiohttp import web

from tokenyard.gateway.context import RequestContext
from tokenyard.gateway.errors import GatewayError
from tokenyard.gateway.stages.chain import Next, Stage
from tokenyard.security.service import PRINCIPAL, AuthFailure

if TYPE_CHECKING:
    from tokenyard.gateway.services import Gateway


def body_reader(gw: Gateway) -> Stage:
    """Receive the whole body within the deadline and the size limit, before any other work."""
    timeout_s = gw.config.timeouts.request_body_ms / 1000
    max_body = gw.config.limits.max_body_bytes

    async def read_body(ctx: RequestContext, call_next: Next) -> web.StreamResponse:
        request = ctx.request
        length = request.content_length
        if length is not None and length > max_body:
            raise GatewayError(413, f"request body of {length} bytes exceeds the limit of {max_body} bytes",
                               "request_too_large")
        try:
            if request.content.is_eof():
                await request.read()  # the whole body is already here: reading it cannot wait, no timer needed
            else:
                # asyncio.timeout, not wait_for: the read stays in this task, so a client leaving cancels it.
                async with asyncio.timeout(timeout_s):
                    await request.read()
        except ConnectionResetError as exc:  # the client left while sending its body
            raise GatewayError(499, "client closed the connection while sending its body", "client_closed",
                               outcome="client_aborted") from exc
        except TimeoutError as exc:
            raise GatewayError(408, f"request body not received within {timeout_s:g} s", "request_timeout") from exc
        except web.HTTPRequestEntityTooLarge as exc:
            raise GatewayError(413, f"request body exceeds the limit of {max_body} bytes",
                               "request_too_large") from exc
        return await call_next(ctx)

    return read_body


def auth_stage(gw: Gateway) -> Stage:
    security = gw.security
    read_body = body_reader(gw)
    if not security.enabled:
        return read_body

    tenants = gw.config.tenants

    async def authenticate(ctx: RequestContext, call_next: Next) -> web.StreamResponse:
        await security.refresh_signing_keys(ctx.request)
        try:
            principal = security.authenticate(ctx.request)
        except AuthFailure as exc:
            security.audit_failure(ctx.request, exc, ctx.request_id)
            raise GatewayError(401, exc.message, exc.code) from exc
        ctx.request[PRINCIPAL] = principal
        ctx.key = principal.key
        ctx.tenant = principal.key.tenant
        ctx.tenant_config = tenants.get(principal.key.tenant)
        refusal = security.route_refusal(ctx.request, principal, ctx.request_id)
        if refusal is not None:
            raise GatewayError(403, refusal, "route_not_allowed")
        return await read_body(ctx, call_next)

    return authenticate
