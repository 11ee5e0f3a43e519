"""Admission: wait for a slot in the request's pool (``traffic.admission.AdmissionController``), or be refused.

Per-class queues with strict priority and aging, deficit round robin across tenants, adaptive per-endpoint
limits, deadlines (``x-tokenyard-deadline-ms``, the class queue TTL, the TTFT SLO of the standard tier) with
early rejection. A refusal is 429 (shed, deadline cannot be met) or 503/504 (queue TTL / client deadline ran
out while queued) with ``Retry-After`` where one is known; outcome ``shed`` or ``expired`` with the reason in
the access log. The lease lives in ``ctx.request[LEASE]`` so the forward terminal can bind the endpoint and
report backend overload; this stage records the backend's TTFT, settles the tenant's credit and releases the
lease on every exit path. A client that leaves while queued cancels the handler, and ``admit`` leaves the queue.
A streaming request still queued after ``streams.heartbeat_s`` is answered 200 at once and kept alive with SSE
comments; a later refusal is then an SSE ``error`` event (``queued_stream``, docs/admission.md).
"""

from __future__ import annotations

import asyncio
from time import monotonic
from typing import TYPE_CHECKING

from aiohttp import web

from tokenyard.gateway.context import RequestContext
from tokenyard.gateway.errors import GatewayError
from tokenyard.gateway.queued_stream import (
    ClientGone,
    admit_with_heartbeats,
    end_with_error,
    queued_stream,
    upstream_error,
)
from tokenyard.gateway.stages.chain import Next, Stage, pass_through
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


def queued_abort_error(reason: str) -> GatewayError:
    """The error of a gateway abort (admin, deadline) that hit a request queued on a committed stream."""
    deadline = reason == "deadline"
    return GatewayError(504 if deadline else 503, f"request aborted: {reason}", reason,
                        outcome="expired" if deadline else "error")


def admission_stage(gw: Gateway) -> Stage:
    controller = gw.traffic.admission
    if controller is None:
        return pass_through
    classes = gw.config.classes
    tiers = gw.traffic.tiers
    heartbeat_s = gw.config.streams.heartbeat_s

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
            # A free slot and nobody queued: the lease at once, no waiting task (the common case).
            lease = controller.admit_now(ticket)
            waited = lease is None  # only a request that waited can have had its stream committed
            if lease is None:
                resume_path = f"/v1/streams/{ctx.request_id}" if cls.resume_window_ms else None
                # A stream still queued after heartbeat_s is committed (200, SSE) and kept alive (queued_stream).
                lease = await admit_with_heartbeats(ctx, controller.admit(ticket), heartbeat_s, resume_path)
        except Rejected as exc:
            ctx.abort_reason = exc.reason  # the access log's reason field
            ctx.queue_s = monotonic() - ctx.started
            committed = queued_stream(ctx)
            if committed is None:
                raise rejection_error(exc) from None
            return await end_with_error(ctx, committed, rejection_error(exc))
        except ClientGone:
            ctx.outcome = "client_aborted"
            return queued_stream(ctx) or web.Response(status=499)
        except asyncio.CancelledError:
            committed = queued_stream(ctx)
            task = ctx.task
            if committed is None or not ctx.abort_reason or task is None or not task.cancelling():
                raise
            task.uncancel()  # a gateway abort (admin, deadline) while queued: the client is still here
            return await end_with_error(ctx, committed, queued_abort_error(ctx.abort_reason))
        dispatched = monotonic()
        ctx.queue_s = lease.queue_wait_s
        ctx.request[LEASE] = lease
        try:
            committed = queued_stream(ctx) if waited else None
            try:
                response = await call_next(ctx)
            except GatewayError as exc:
                if committed is None:
                    raise
                return await end_with_error(ctx, committed, exc)
            if committed is not None and response is not committed:
                # The upstream refused with a whole (non-SSE) answer: the head is sent, so it becomes an event.
                return await end_with_error(ctx, committed, upstream_error(response))
            return response
        finally:
            if ctx.ttft is not None and lease.endpoint is not None:
                # The backend's part of the TTFT (from dispatch): what the predictor and the limit learn from.
                lease.record_ttft(max(0.0, ctx.started + ctx.ttft - dispatched))
            if ctx.prompt_tokens or ctx.completion_tokens:
                lease.settle(ctx.prompt_tokens, ctx.completion_tokens)
            lease.release()

    return admission
