"""Rate limits per key, tenant and class (``traffic.ratelimit``): requests and tokens per minute, concurrency.

The request is charged its estimated tokens (prompt estimate + ``max_tokens``, or ``DEFAULT_OUTPUT_ESTIMATE``)
before it goes on; when it ends the charge is reconciled with the usage the upstream reported, refunded in full
when it never reached a backend, and its concurrency slot is given back on every exit path. OpenAI's
``x-ratelimit-*`` headers go on the response (success and error alike, through ``ctx.response_headers``); a
refusal is 429 with ``Retry-After``, counted as outcome ``rate_limited`` with its reason in the access log.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from tokenyard.gateway.context import RequestContext
from tokenyard.gateway.errors import GatewayError
from tokenyard.gateway.stages.chain import Next, Stage, pass_through
from tokenyard.traffic.ratelimit import RateTicket, merge_headers

if TYPE_CHECKING:
    from tokenyard.gateway.services import Gateway

# Output tokens assumed for a request without max_tokens (corrected by reconciliation afterwards).
DEFAULT_OUTPUT_ESTIMATE = 512


def estimated_tokens(ctx: RequestContext) -> int:
    parsed = ctx.parsed
    if parsed is None:
        return 0
    output = parsed.max_tokens if parsed.max_tokens is not None else DEFAULT_OUTPUT_ESTIMATE
    return parsed.prompt_tokens_estimate + output * max(1, parsed.n)


def tokens_used(ctx: RequestContext) -> int:
    """The tokens a finished request is charged, replacing its estimate in the token limits."""
    if not ctx.backend:
        return 0  # never reached a backend (shed, expired, rejected, gone while queued): full refund
    if ctx.prompt_tokens:
        return ctx.prompt_tokens + ctx.completion_tokens
    # No usage reported (aborted): the prompt estimate plus what was relayed.
    return (ctx.parsed.prompt_tokens_estimate if ctx.parsed else 0) + ctx.completion_tokens


def ratelimit_stage(gw: Gateway) -> Stage:
    limiter = gw.traffic.limiter
    if not limiter.enabled:
        return pass_through  # no key, tenant or class limit configured: nothing to check or settle

    async def ratelimit(ctx: RequestContext, call_next: Next) -> web.StreamResponse:
        estimate = estimated_tokens(ctx)
        ticket = RateTicket(ctx.request_id, ctx.key.name if ctx.key is not None else "", ctx.tenant, ctx.klass,
                            estimate)
        decision = limiter.check(ticket)
        merge_headers(ctx.response_headers, decision.headers)
        if not decision.allowed:
            ctx.abort_reason = decision.reason  # the access log's reason field
            retry = {"Retry-After": str(decision.retry_after_s or 1)}
            raise GatewayError(429, f"rate limit reached for {decision.scope}: {decision.reason}", decision.reason,
                               outcome="rate_limited", headers=retry)
        try:
            return await call_next(ctx)
        finally:
            limiter.reconcile(ticket, tokens_used(ctx))
            limiter.release(ticket)

    return ratelimit
