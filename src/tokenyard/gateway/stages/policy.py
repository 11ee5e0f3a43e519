"""Policy: what an authenticated caller may do and spend, checked before any upstream work.

- Service identities (JWT, mTLS) are default-deny: the east-west policy must grant the model (403 otherwise,
  naming the identity and the model). API keys are scoped by their own ``models`` (the model stage).
- The model's context window (``models.NAME.max_context_tokens``): a request that certainly cannot fit is 400.
- Key-store keys' own ``rpm``/``tpm``/``max_concurrency`` (config keys' limits are applied by the rate-limit
  stage): in this process with ``state: memory``, in the shared state (like config limits) with Redis.
- Token budgets of the key and its tenant, per UTC day and month: a caller whose budget is spent gets 429 with
  a message saying which budget; a request that goes on is charged its real usage once it ends.
"""

from __future__ import annotations

import logging
import math
import time
from typing import TYPE_CHECKING

from aiohttp import web

from tokenyard.gateway.context import RequestContext
from tokenyard.gateway.errors import GatewayError
from tokenyard.gateway.stages.chain import Next, Stage
from tokenyard.gateway.stages.distributed import apply_shared_decision
from tokenyard.gateway.stages.ratelimit import estimated_tokens, tokens_used
from tokenyard.schema import RequestInvalid
from tokenyard.schema.context import check_context_window
from tokenyard.security.service import PRINCIPAL, Principal
from tokenyard.state import StateUnavailable
from tokenyard.state.periods import period_end
from tokenyard.traffic.distributed import GlobalLimiter
from tokenyard.traffic.ratelimit import RateLimit, RateTicket, merge_headers

if TYPE_CHECKING:
    from tokenyard.gateway.services import Gateway

log = logging.getLogger("tokenyard.security")


def policy_stage(gw: Gateway) -> Stage:
    security = gw.security

    async def charge_budgets(ctx: RequestContext, call_next: Next) -> web.StreamResponse:
        budgets = security.budgets_of(ctx.key)
        guard = security.budgets
        if not budgets or guard is None:
            return await call_next(ctx)
        try:
            exhausted = await guard.check(budgets)
        except StateUnavailable as exc:  # fail closed: an unchecked budget is an open wallet
            raise GatewayError(503, "token budgets cannot be checked right now", "budget_unavailable") from exc
        if exhausted is not None:
            now = time.time()
            retry_s = max(1, math.ceil(period_end(exhausted.budget.period, now) - now))
            raise GatewayError(429, exhausted.message(), "budget_exhausted", outcome="rate_limited",
                               headers={"Retry-After": str(retry_s)})
        try:
            return await call_next(ctx)
        finally:
            try:
                await guard.charge(budgets, tokens_used(ctx))
            except StateUnavailable as exc:
                log.warning("request %s: usage not charged to its budget: %s", ctx.request_id, exc)

    async def limit_store_key(ctx: RequestContext, principal: Principal, call_next: Next) -> web.StreamResponse:
        """rpm/tpm of a key-store key, with the same limiter engine and headers as the rate-limit stage."""
        limiter = security.store_key_limiter(principal)
        if limiter is None:
            return await charge_budgets(ctx, call_next)
        ticket = RateTicket(ctx.request_id, principal.key.name, "", "", estimated_tokens(ctx))
        key = principal.key
        shared = gw.scaleout.key_limiter(key.name, RateLimit(key.rpm, key.tpm, key.max_concurrency))
        if shared is not None:
            return await limit_shared(ctx, shared, ticket, call_next)
        decision = limiter.check(ticket)
        merge_headers(ctx.response_headers, decision.headers)
        if not decision.allowed:
            raise GatewayError(429, f"rate limit reached for {decision.scope}: {decision.reason}", decision.reason,
                               outcome="rate_limited", headers={"Retry-After": str(decision.retry_after_s or 1)})
        try:
            return await charge_budgets(ctx, call_next)
        finally:
            limiter.reconcile(ticket, tokens_used(ctx))
            limiter.release(ticket)

    async def limit_shared(ctx: RequestContext, shared: GlobalLimiter, ticket: RateTicket,
                           call_next: Next) -> web.StreamResponse:
        """A key-store key's limits in the shared state: every replica and worker counts them together."""
        holder = gw.scaleout.holder(ctx)
        apply_shared_decision(ctx, await shared.check(ticket, holder))
        try:
            return await charge_budgets(ctx, call_next)
        finally:
            await shared.settle(ticket, holder, tokens_used(ctx))

    async def check_policy(ctx: RequestContext, call_next: Next) -> web.StreamResponse:
        # On the chain's paths only the auth stage sets a principal, and only when security is on.
        principal = ctx.request.get(PRINCIPAL) if security.enabled else None
        if principal is not None and ctx.parsed is not None:
            decision = security.decide(principal, "models", ctx.parsed.model)
            if decision is not None and not decision.allowed:
                raise GatewayError(403, f"identity {principal.identity.subject} may not call model "
                                   f"{ctx.parsed.model!r} (east-west policy: default deny)",
                                   "model_not_allowed", param="model")
        if ctx.parsed is not None and ctx.pool is not None:
            try:
                check_context_window(ctx.parsed, ctx.pool.config.max_context_tokens)
            except RequestInvalid as exc:
                raise GatewayError(exc.status, exc.message, exc.code, param=exc.param) from exc
        if principal is not None and principal.from_store:
            return await limit_store_key(ctx, principal, call_next)
        if ctx.key is None:
            return await call_next(ctx)  # no key, no budget to charge (budgets_of(None) is empty)
        return await charge_budgets(ctx, call_next)

    return check_policy
