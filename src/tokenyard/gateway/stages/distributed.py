"""Stages for limits shared by all replicas (``traffic.distributed``); both pass through with ``state: memory``.

``global_limit_stage`` (beside the local rate limit): the key/tenant/class rpm, tpm and concurrency limits in
Redis; a refusal is 429 ``rate_limited`` with ``Retry-After`` and OpenAI's ``x-ratelimit-*`` headers; Redis down
and ``scaleout.fail_open: false`` is 503. The backend budget (``scaleout.endpoint_budget``) is taken per endpoint
by the router (``traffic.router``, ``EndpointBudget``): none in time is 503 ``budget_exhausted``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from tokenyard.gateway.context import RequestContext
from tokenyard.gateway.errors import GatewayError
from tokenyard.gateway.stages.chain import Next, Stage, pass_through
from tokenyard.gateway.stages.ratelimit import estimated_tokens, tokens_used
from tokenyard.traffic.distributed import STATE_DOWN
from tokenyard.traffic.ratelimit import RateDecision, RateTicket, merge_headers

if TYPE_CHECKING:
    from tokenyard.gateway.services import Gateway


def apply_shared_decision(ctx: RequestContext, decision: RateDecision) -> None:
    """Apply a shared-state limiter's decision: its ``x-ratelimit-*`` headers on the answer, and a refusal as
    429 (``Retry-After``), or 503 when the shared state is down (limits cannot be counted, so none are granted)."""
    merge_headers(ctx.response_headers, decision.headers)
    if decision.allowed:
        return
    ctx.abort_reason = decision.reason
    retry = {"Retry-After": str(decision.retry_after_s or 1)}
    if decision.reason == STATE_DOWN:
        raise GatewayError(503, "rate limits are unavailable (shared state down)", STATE_DOWN, outcome="error",
                           headers=retry)
    raise GatewayError(429, f"rate limit reached for {decision.scope}: {decision.reason}", decision.reason,
                       outcome="rate_limited", headers=retry)


def global_limit_stage(gw: Gateway) -> Stage:
    scaleout = gw.scaleout
    limiter = scaleout.limiter
    if limiter is None:
        return pass_through

    async def global_limit(ctx: RequestContext, call_next: Next) -> web.StreamResponse:
        ticket = RateTicket(ctx.request_id, ctx.key.name if ctx.key is not None else "", ctx.tenant, ctx.klass,
                            estimated_tokens(ctx))
        holder = scaleout.holder(ctx)
        apply_shared_decision(ctx, await limiter.check(ticket, holder))
        try:
            return await call_next(ctx)
        finally:
            await limiter.settle(ticket, holder, tokens_used(ctx))

    return global_limit
