"""Auth by API key: ``Authorization: Bearer KEY`` hashed and looked up in constant time; off without keys."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from tokenyard.config import KeyConfig, KeyLookup
from tokenyard.gateway.context import RequestContext
from tokenyard.gateway.errors import GatewayError
from tokenyard.gateway.stages.chain import Next, Stage

if TYPE_CHECKING:
    from tokenyard.gateway.services import Gateway

_BEARER = "bearer "


def auth_stage(gw: Gateway) -> Stage:
    config = gw.config
    if not config.auth_enabled:

        async def open_door(ctx: RequestContext, call_next: Next) -> web.StreamResponse:
            return await call_next(ctx)

        return open_door

    lookup: KeyLookup[KeyConfig] = KeyLookup((k.key_sha256, k) for k in config.keys if k.key_sha256)
    tenants = config.tenants

    async def authenticate(ctx: RequestContext, call_next: Next) -> web.StreamResponse:
        header = ctx.request.headers.get("Authorization", "")
        if header[:7].lower() != _BEARER or len(header) <= 7:
            raise GatewayError(401, "missing API key: send 'Authorization: Bearer KEY'", "missing_api_key")
        key = lookup.find(header[7:].strip())
        if key is None:
            raise GatewayError(401, "invalid API key", "invalid_api_key")
        ctx.key = key
        ctx.tenant = key.tenant
        ctx.tenant_config = tenants.get(key.tenant)
        return await call_next(ctx)

    return authenticate
