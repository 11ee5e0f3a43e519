"""Admission: wait for a slot in the request's pool (``traffic.admission.AdmissionController``), or be refused.

Per-class queues with strict priority and aging, deficit round robin across tenants, adaptive per-endpoint
limits, deadlines (``x-tokenyard-deadline-ms``, the class queue TTL, the TTFT SLO of the standard tier) with
early rejection. A refusal is 429 (shed, deadline cannot be met) or 503/504 (queue TTL / client deadline ran
out while queued) with ``Retry-After`` where one is known; outcome ``shed`` or ``expired`` with the reason in
the access log. The lease lives in ``ctx.request[LEASE]`` so the forward terminal can bind the endpoint and
report backend overload; this stage records the backend's TTFT, settles the tenant's credit and releases the
lease on every exit path. A client that leaves while queued cancels the handler, and ``admit`` leaves the queue.
"""

from __future__ import annotations

from time import monotonic
from typing import TYPE_CHECKING

from aiohttp import web

from tokenyard.gateway.context import RequestContext
from tokenyard.gateway.errors import GatewayError
from tokenyard.gateway.stages.chain import Next, Stage
from tokenyard.schema.errors import error_body
from tokenyard.traffic.admission import Lease
from tokenyard.traffic.admission_setup import admission_ticket
from tokenyard.traffic.admission_types import DEADLINE_EXCEEDED, QUEUE_TIMEOUT, SHUTTING_DOWN, Rejected

if TYPE_CHECKING:
    from tokenyard.gateway.services import Gateway

LEASE = web.RequestKey("tokenyard_lease", Lease)  # the request's admission lease
_OUTCOMES = {QUEUE_TIMEOUT: "expired", DEADLINE_EXCEEDED: "expired", SHUTTING_DOWN: "error"}


def lease_of(ctx: RequestContext) -> Lease | None:
    """The request's admission lease (None when admission is off or not reached)."""
    return ctx.request.get(LEASE)


class OverloadedError(GatewayError):
    """An admission refusal. Its error ``type`` is ``overloaded_error`` (not ``rate_limit_error``), so a client
    can tell the gateway shedding load from its own rate limit; the status (429/503/504) is what SDKs act on."""

    def body(self) -> bytes:
        return error_body(self.message, "overloaded_error", self.code, self.param)


def rejection_error(exc: Rejected) -> GatewayError:
    """The client's answer to an admission refusal; every other reason is load shedding (outcome ``shed``)."""
    headers = {"Retry-After": str(exc.retry_after_s)} if exc.retry_after_s is not None else None
    return OverloadedError(exc.status, exc.message, exc.reason, outcome=_OUTCOMES.get(exc.reason, "shed"),
                           headers=headers)


async def _pass(ctx: RequestContext, call_next: Next) -> web.StreamResponse:
    return await call_next(ctx)


def admission_stage(gw: Gateway) -> Stage:
    controller = gw.traffic.admission
    if controller is None:
        return _pass
    classes = gw.config.classes
    tiers = gw.traffic.tiers

    async def admission(ctx: RequestContext, call_next: Next) -> web.StreamResponse:
        assert ctx.pool is not None and ctx.parsed is not None
        cls = classes[ctx.klass]
        ticket = admission_ticket(
            request_id=ctx.request_id,
            tenant=ctx.tenant,
            klass=ctx.klass,
            cls=cls,
            tier=tiers[ctx.klass],
            pool=ctx.pool.name,
            prompt_tokens=ctx.parsed.prompt_tokens_estimate,
            max_tokens=ctx.parsed.max_tokens,
            deadline_ms=(ctx.deadline - ctx.started) * 1000 if ctx.deadline is not None else None,
            weight=float(ctx.tenant_config.weight) if ctx.tenant_config is not None else 1.0,
            arrival=ctx.started,
        )
        try:
            lease = await controller.admit(ticket)
        except Rejected as exc:
            ctx.abort_reason = exc.reason  # the access log's reason field
            ctx.queue_s = monotonic() - ctx.started
            raise rejection_error(exc) from None
        dispatched = monotonic()
        ctx.queue_s = lease.queue_wait_s
        ctx.request[LEASE] = lease
        try:
            return await call_next(ctx)
        finally:
            if ctx.ttft is not None and lease.endpoint is not None:
                # The backend's part of the TTFT (from dispatch): what the predictor and the limit learn from.
                lease.record_ttft(max(0.0, ctx.started + ctx.ttft - dispatched))
            if ctx.prompt_tokens or ctx.completion_tokens:
                lease.settle(ctx.prompt_tokens, ctx.completion_tokens)
            lease.release()

    return admission
