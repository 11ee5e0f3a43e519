"""Degrade: apply the degradation ladder's actions (``traffic.degrade``) to the request body before forwarding.

Only classes whose level is above 0 pay for a JSON decode. Applied actions are named in ``x-tokenyard-degraded``
and counted in ``tokenyard_degradation_actions_total``; headers the ladder wants upstream (the retrieval
``top_k`` hint) travel in ``ctx.upstream_headers``. ``fallback_model`` moves the request to the pool of
the model's first configured ``fallback``. The stage also feeds the client-seen TTFT of each request back.
Retrieval hops (``POST /v1/retrieve``) get ``compress_retrieval`` from ``degrade_retrieval``, called by the
east-west handler once it has read the body.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec
from aiohttp import web

from tokenyard.gateway.context import CHAT, COMPLETION, RequestContext
from tokenyard.gateway.stages.chain import Next, Stage, pass_through
from tokenyard.policy.degradation import FALLBACK_MODEL, LEVEL_ACTIONS
from tokenyard.traffic.degrade import RETRIEVAL

if TYPE_CHECKING:
    from tokenyard.gateway.services import Gateway

DEGRADED_HEADER = "x-tokenyard-degraded"


def upstream_headers(ctx: RequestContext) -> dict[str, str]:
    """Extra headers a stage asked to send upstream (empty when none)."""
    return ctx.upstream_headers or {}


def degrade_retrieval(gw: Gateway, ctx: RequestContext, body: bytes) -> bytes:
    """A retrieval call's body after the ladder's ``compress_retrieval`` (``top_k`` capped at ``top_k_cap``) for
    the request's class: named in ``x-tokenyard-degraded`` and counted like the model requests' actions.
    ``body`` is a JSON object (checked by the caller); returned unchanged when nothing applies."""
    engine = gw.traffic.degrade
    if engine is None or engine.current_level(ctx.klass) == 0:
        return body
    document: Any = msgspec.json.decode(body) if body else {}
    result = engine.apply(ctx.klass, document, kind=RETRIEVAL)
    if not result.actions:
        return body
    ctx.response_headers[DEGRADED_HEADER] = ",".join(result.actions)
    for action in result.actions:
        gw.metrics.degradation_actions.labels(action).inc()
    return msgspec.json.encode(document)


def degrade_stage(gw: Gateway) -> Stage:
    engine = gw.traffic.degrade
    if engine is None:
        return pass_through
    counters = {action: gw.metrics.degradation_actions.labels(action) for action in LEVEL_ACTIONS}
    pools = gw.pools

    def fallback_of(ctx: RequestContext) -> str | None:
        if ctx.pool is None:
            return None
        return next((name for name in ctx.pool.config.fallback if name in pools), None)

    async def degrade(ctx: RequestContext, call_next: Next) -> web.StreamResponse:
        if ctx.operation in (CHAT, COMPLETION) and engine.current_level(ctx.klass) > 0:
            body: Any = msgspec.json.decode(ctx.body)
            if isinstance(body, dict):
                fallback = fallback_of(ctx)
                result = engine.apply(ctx.klass, body, fallback_model=fallback)
                if result.headers:
                    ctx.upstream_headers = {**upstream_headers(ctx), **result.headers}
                if result.actions:
                    if FALLBACK_MODEL in result.actions and fallback is not None:
                        pool = pools[fallback]
                        ctx.pool = pool
                        if pool.config.upstream_model is not None:
                            body["model"] = ctx.upstream_model = pool.config.upstream_model
                    ctx.body = msgspec.json.encode(body)
                    ctx.response_headers[DEGRADED_HEADER] = ",".join(result.actions)
                    for action in result.actions:
                        counters[action].inc()
        response = await call_next(ctx)
        if ctx.ttft is not None:
            engine.observe_ttft(ctx.klass, ctx.ttft)
        return response

    return degrade
