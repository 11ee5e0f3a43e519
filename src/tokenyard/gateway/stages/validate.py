"""Validation before any upstream work: a reused ``x-request-id`` (409, see ``observe``), then the OpenAI schema
of the operation.

The body size and the time to receive it were enforced by the body reader (``auth.body_reader``), which runs
before this stage on every request: here the body is already in memory.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from aiohttp import web

from tokenyard.config import LimitsConfig
from tokenyard.gateway.context import CHAT, COMPLETION, EMBEDDING, RequestContext
from tokenyard.gateway.errors import GatewayError
from tokenyard.gateway.stages.chain import Next, Stage
from tokenyard.gateway.stages.observe import refuse_reused_id
from tokenyard.schema import ParsedRequest, RequestInvalid, parse_chat, parse_completion, parse_embedding

if TYPE_CHECKING:
    from tokenyard.gateway.services import Gateway

PARSERS: dict[str, Callable[[bytes, LimitsConfig | None], ParsedRequest]] = {
    CHAT: parse_chat,
    COMPLETION: parse_completion,
    EMBEDDING: parse_embedding,
}


def validate_stage(gw: Gateway) -> Stage:
    limits = gw.config.limits

    async def validate(ctx: RequestContext, call_next: Next) -> web.StreamResponse:
        refuse_reused_id(ctx)  # after auth (the stage before): anonymous callers learn nothing about ids in use
        body = await ctx.request.read()  # received whole by the body reader: returned from memory
        try:
            ctx.parsed = PARSERS[ctx.operation](body, limits)
        except RequestInvalid as exc:
            raise GatewayError(exc.status, exc.message, exc.code, param=exc.param) from exc
        ctx.body = body
        return await call_next(ctx)

    return validate
