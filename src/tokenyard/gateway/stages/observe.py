"""The outermost stage: request id, error mapping, in-flight registration, metrics and the access log.

Request ids: a client's ``x-request-id`` is kept and echoed unless that id is in use on this gateway (a request
in flight, or a resumable stream whose window is open): then the request gets a fresh id and is refused with
409 ``request_id_in_use`` once it has authenticated (``refuse_reused_id``, in the validate stage), so one
request can never take over, cut off or be confused with another's stream, in-flight entry or resume record.
Generated ids are random (96 bits): nobody can guess, pre-claim or probe another client's id.
"""

from __future__ import annotations

import asyncio
import logging
from time import monotonic
from typing import TYPE_CHECKING

from aiohttp import web

from tokenyard.gateway.context import RequestContext
from tokenyard.gateway.errors import GatewayError
from tokenyard.gateway.relay import gateway_headers
from tokenyard.gateway.request_ids import acceptable_request_id, generated_request_id
from tokenyard.gateway.stages.chain import Next, Stage

if TYPE_CHECKING:
    from tokenyard.gateway.services import Gateway

# Set on the request when its client-chosen x-request-id was in use: the id it asked for (refused after auth).
REUSED_REQUEST_ID = web.RequestKey("tokenyard_reused_request_id", str)
log = logging.getLogger("tokenyard.gateway")


def refuse_reused_id(ctx: RequestContext) -> None:
    """Raise 409 ``request_id_in_use`` if the client asked for an id that was in use (see the module doc).

    Called after authentication, so an anonymous caller cannot use it to learn which ids are in flight."""
    reused = ctx.request.get(REUSED_REQUEST_ID)
    if reused is not None:
        raise GatewayError(409, f"x-request-id {reused!r} is already in use by a request in flight or a stream that "
                                "can still be resumed; send a unique id or leave the header out", "request_id_in_use",
                           param="x-request-id")


def observe_stage(gw: Gateway) -> Stage:
    inflight = gw.inflight
    resumable = gw.resume.records
    metrics = gw.metrics
    access_log = gw.access_log
    tracing = gw.tracing

    async def observe(ctx: RequestContext, call_next: Next) -> web.StreamResponse:
        given = ctx.request.headers.get("x-request-id")
        if given is not None and acceptable_request_id(given):
            if given in inflight or given in resumable:
                ctx.request_id = generated_request_id()  # never shares an id; refused once authenticated
                ctx.request[REUSED_REQUEST_ID] = given
            else:
                ctx.request_id = given
        else:
            ctx.request_id = generated_request_id()
        ctx.task = asyncio.current_task()
        if tracing is not None:
            ctx.trace = tracing.begin(ctx)
        inflight[ctx.request_id] = ctx  # unique: checked above, with no await in between
        try:
            try:
                response = await call_next(ctx)
            except GatewayError as exc:
                ctx.status = exc.status
                ctx.outcome = exc.outcome
                response = exc.response()
            except asyncio.CancelledError:
                task = ctx.task
                if ctx.abort_reason and task is not None and task.cancelling() and not ctx.outcome:
                    # The gateway aborted it (admin, deadline) before any upstream work: answer the client.
                    task.uncancel()
                    error = GatewayError(504 if ctx.abort_reason == "deadline" else 503,
                                         f"request aborted: {ctx.abort_reason}", ctx.abort_reason,
                                         outcome="expired" if ctx.abort_reason == "deadline" else "error")
                    ctx.status = error.status
                    ctx.outcome = error.outcome
                    answer = error.response()
                    answer.headers.update(gateway_headers(ctx))
                    return answer
                if not ctx.outcome:
                    ctx.outcome = "client_aborted"
                ctx.status = ctx.status or 499
                raise
            except Exception:
                log.exception("request %s failed", ctx.request_id)
                error = GatewayError(500, "internal gateway error", "internal_error")
                ctx.status = 500
                ctx.outcome = "error"
                response = error.response()
            if not response.prepared:
                response.headers.update(gateway_headers(ctx))
            return response
        finally:
            if inflight.get(ctx.request_id) is ctx:
                del inflight[ctx.request_id]
            # The bookkeeping runs after the response is written (the server, native or aiohttp, writes a returned
            # response in this same task step; call_soon comes after it), so the client never waits for it.
            asyncio.get_running_loop().call_soon(account, ctx, monotonic())

    def account(ctx: RequestContext, end: float) -> None:
        """Metrics, access log and trace of an ended request; the upstream attempt's latency attribution."""
        try:
            attempt = ctx.attempt
            if attempt is not None:
                ctx.phases = attempt.finish(ctx.outcome, ctx.started + ctx.ttft if ctx.ttft is not None else None,
                                            timed_out=ctx.abort_reason == "upstream_timeout")
                ctx.tcp_retransmits = attempt.clock.retransmits
            if not ctx.prompt_tokens and ctx.completion_tokens and ctx.parsed is not None:
                # A stream without usage (the client did not ask for it): the prompt was still read by the model.
                # Count the gateway's estimate, the one rate limits and budgets settle with, rather than 0.
                ctx.prompt_tokens = ctx.parsed.prompt_tokens_estimate
            series = metrics.series(ctx.model, ctx.klass)
            series.outcomes[ctx.outcome or "error"].inc()
            series.duration.observe(end - ctx.started)
            if ctx.prompt_tokens:
                series.prompt_tokens.inc(ctx.prompt_tokens)
            if ctx.completion_tokens:
                series.completion_tokens.inc(ctx.completion_tokens)
            if access_log is not None:
                access_log.write(ctx, end)
            if ctx.trace is not None:
                ctx.trace.end(ctx, end)
        except Exception:
            log.exception("accounting of request %s failed", ctx.request_id)

    return observe
