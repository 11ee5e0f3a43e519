"""Auth: who is calling. API keys (config or key store), JWT service identities or mTLS client certificates.

Off only in the loopback "auth off" mode (no credential of any kind configured). Every failure is a 401 in
OpenAI's format, saying whether the credential was missing, unknown, revoked or expired, and is written to the
audit log (the reason and the caller's address, never the credential).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from tokenyard.gateway.context import RequestContext
from tokenyard.gateway.errors import GatewayError
from tokenyard.gateway.stages.chain import Next, Stage
from tokenyard.security.service import PRINCIPAL, AuthFailure

if TYPE_CHECKING:
    from tokenyard.gateway.services import Gateway


def auth_stage(gw: Gateway) -> Stage:
    security = gw.security
    if not security.enabled:

        async def open_door(ctx: RequestContext, call_next: Next) -> web.StreamResponse:
            return await call_next(ctx)

        return open_door

    tenants = gw.config.tenants

    async def authenticate(ctx: RequestContext, call_next: Next) -> web.StreamResponse:
        try:
            principal = security.authenticate(ctx.request)
        except AuthFailure as exc:
            security.audit_failure(ctx.request, exc, ctx.request_id)
            raise GatewayError(401, exc.message, exc.code) from exc
        ctx.request[PRINCIPAL] = principal
        ctx.key = principal.key
        ctx.tenant = principal.key.tenant
        ctx.tenant_config = tenants.get(principal.key.tenant)
        return await call_next(ctx)

    return authenticate
