"""Validation before any upstream work: body size, then the OpenAI schema of the operation."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from aiohttp import web

from tokenyard.config import LimitsConfig
from tokenyard.gateway.context import CHAT, COMPLETION, EMBEDDING, RequestContext
from tokenyard.gateway.errors import GatewayError
from tokenyard.gateway.stages.chain import Next, Stage
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
    max_body = limits.max_body_bytes

    async def validate(ctx: RequestContext, call_next: Next) -> web.StreamResponse:
        request = ctx.request
        length = request.content_length
        if length is not None and length > max_body:
            raise GatewayError(413, f"request body of {length} bytes exceeds the limit of {max_body} bytes",
                               "request_too_large")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge as exc:
            raise GatewayError(413, f"request body exceeds the limit of {max_body} bytes",
                               "request_too_large") from exc
        try:
            ctx.parsed = PARSERS[ctx.operation](body, limits)
        except RequestInvalid as exc:
            raise GatewayError(exc.status, exc.message, exc.code, param=exc.param) from exc
        ctx.body = body
        return await call_next(ctx)

    return validate
