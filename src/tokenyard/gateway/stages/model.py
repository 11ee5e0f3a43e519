"""Model -> pool: find the pool serving the requested model name (404 when none), check the key may use it.

A configured pool serves only the operations of its ``kind`` (``llm``: chat and completions; ``chat``;
``completion``; ``embedding``): any other operation on it is 404 ``model_not_found`` (what OpenAI answers for a
model the endpoint does not serve), before any upstream work. The pass-through pool (``*``) is not checked: the
upstream behind it decides what it serves.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec
from aiohttp import web

from tokenyard.config import PASS_THROUGH_MODEL
from tokenyard.gateway.context import CHAT, COMPLETION, EMBEDDING, RequestContext
from tokenyard.gateway.errors import GatewayError
from tokenyard.gateway.stages.chain import Next, Stage

if TYPE_CHECKING:
    from tokenyard.gateway.services import Gateway


def rename_model(body: bytes, model: str) -> bytes:
    """The body with its ``model`` replaced (only used when a pool sets ``upstream_model``)."""
    document = msgspec.json.decode(body)
    document["model"] = model
    return msgspec.json.encode(document)


# The pool kinds that serve each operation (retrieval and tool pools serve none of them).
KINDS_OF_OPERATION: dict[str, frozenset[str]] = {
    CHAT: frozenset(("llm", "chat")),
    COMPLETION: frozenset(("llm", "completion")),
    EMBEDDING: frozenset(("embedding",)),
}
_ENDPOINTS = {CHAT: "/v1/chat/completions", COMPLETION: "/v1/completions", EMBEDDING: "/v1/embeddings"}


def wrong_kind_error(name: str, kind: str, operation: str) -> GatewayError:
    """The 404 for a configured model whose pool kind does not serve ``operation``."""
    return GatewayError(404, f"the model {name!r} (kind {kind}) is not served on {_ENDPOINTS[operation]}",
                        "model_not_found", param="model")


def model_stage(gw: Gateway) -> Stage:
    pools = gw.pools
    pass_through = pools.get(PASS_THROUGH_MODEL)

    async def route_model(ctx: RequestContext, call_next: Next) -> web.StreamResponse:
        assert ctx.parsed is not None
        name = ctx.parsed.model
        if ctx.key is not None and ctx.key.models is not None and name not in ctx.key.models:
            raise GatewayError(403, f"this key may not use model {name!r}", "model_not_allowed", param="model")
        pool = pools.get(name)
        if pool is None:
            pool = pass_through
            if pool is None or (pool.known_models is not None and name not in pool.known_models):
                raise GatewayError(404, f"the model {name!r} does not exist", "model_not_found", param="model")
        elif pool.config.kind not in KINDS_OF_OPERATION[ctx.operation]:
            raise wrong_kind_error(name, pool.config.kind, ctx.operation)
        ctx.pool = pool
        # Metric labels stay bounded: a name is a label only when configured or listed by an upstream.
        ctx.model = name if pool.name != PASS_THROUGH_MODEL or pool.known_models is not None else PASS_THROUGH_MODEL
        upstream_model = pool.config.upstream_model
        if upstream_model is not None and upstream_model != name:
            ctx.upstream_model = upstream_model
            ctx.body = rename_model(ctx.body, upstream_model)
        return await call_next(ctx)

    return route_model
