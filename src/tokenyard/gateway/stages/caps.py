"""Class caps: ``classes.NAME.max_tokens_cap`` bounds the output of every chat and completion of the class.

A request asking for more is capped, not refused. A request that names no limit gets the cap too: without one the
upstream generates up to its own default (for chat, the rest of the context window), which is exactly what the
cap is there to prevent. The body sent upstream carries the capped value in the field the client used
(``max_completion_tokens`` and/or ``max_tokens``); when it used neither, in ``max_completion_tokens`` for chat
(OpenAI's current field, read by vLLM too) and ``max_tokens`` for completions. ``ctx.parsed`` is replaced by
one with the capped ``max_tokens``, so every later stage (context window, rate limits, token budgets,
admission) counts what the upstream may really generate.

The stage runs right after classify (the class is known) and before the model stage; it is left out of the chain
when no class has a cap, and only a request whose limit changes pays for a JSON decode and encode.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec
from aiohttp import web

from tokenyard.gateway.context import CHAT, COMPLETION, RequestContext
from tokenyard.gateway.stages.chain import Next, Stage, pass_through

if TYPE_CHECKING:
    from tokenyard.gateway.services import Gateway

_LIMIT_FIELDS = ("max_tokens", "max_completion_tokens")
_DEFAULT_FIELD = {CHAT: "max_completion_tokens", COMPLETION: "max_tokens"}


def capped_body(body: bytes, cap: int, operation: str) -> bytes:
    """``body`` with every output limit above ``cap`` lowered to it, or the cap added when it sets none."""
    document: Any = msgspec.json.decode(body)
    if not isinstance(document, dict):  # validated already: cannot happen, but never fail a request over it
        return body
    given = [field for field in _LIMIT_FIELDS if document.get(field) is not None]
    for field in given:
        document[field] = min(document[field], cap)
    if not given:
        document[_DEFAULT_FIELD[operation]] = cap
    return msgspec.json.encode(document)


def cap_stage(gw: Gateway) -> Stage:
    caps = {name: cls.max_tokens_cap for name, cls in gw.config.classes.items() if cls.max_tokens_cap is not None}
    if not caps:
        return pass_through

    async def cap_max_tokens(ctx: RequestContext, call_next: Next) -> web.StreamResponse:
        cap = caps.get(ctx.klass)
        parsed = ctx.parsed
        if cap is not None and parsed is not None and ctx.operation in _DEFAULT_FIELD and (
                parsed.max_tokens is None or parsed.max_tokens > cap):
            ctx.body = capped_body(ctx.body, cap, ctx.operation)
            ctx.parsed = msgspec.structs.replace(parsed, max_tokens=cap)
        return await call_next(ctx)

    return cap_max_tokens
