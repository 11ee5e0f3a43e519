"""The response path: relay an upstream answer to the client, measure it, and close the upstream on any abort.

Streams are passed through chunk by chunk as they arrive (only ``id:`` lines are inserted, see ``sse``), never
re-serialised; TTFT, inter-token latency and tokens are measured on the way. Whatever ends a request early — the
client leaving (aiohttp cancels the handler, also while nothing is being written), a write failing, an admin
abort, the deadline or an upstream timeout — closes the upstream response and its connection at once (it is not
returned to the pool), so the model server sees the disconnect and stops generating.
"""

from __future__ import annotations

import asyncio
from time import monotonic

import aiohttp
from aiohttp import web

from tokenyard.cache.coalesce import STREAM_TAP
from tokenyard.gateway.context import RequestContext
from tokenyard.gateway.errors import GatewayError
from tokenyard.gateway.heartbeat import QUEUED_STREAM, HeartbeatChunks
from tokenyard.gateway.sse import SseFramer, find_usage, scan_events
from tokenyard.gateway.upstream_errors import RETRY_LATER, normalise_upstream_error
from tokenyard.gateway.watchdog import Watchdog
from tokenyard.telemetry.metrics import GatewayMetrics, RequestSeries
from tokenyard.upstream.h1_connection import H1Response

SSE_CONTENT_TYPE = "text/event-stream"
_ABORT_STATUS = {"deadline": 504, "upstream_timeout": 504, "admin": 503}
_ABORT_MESSAGE = {
    "deadline": "the request's deadline was exceeded",
    "upstream_timeout": "the upstream did not answer in time",
    "admin": "the request was aborted by an administrator",
}


def gateway_headers(ctx: RequestContext) -> dict[str, str]:
    """The ``x-request-id``/``x-tokenyard-*`` response headers known so far."""
    headers = {"x-request-id": ctx.request_id}
    if ctx.klass:
        headers["x-tokenyard-class"] = ctx.klass
    if ctx.backend:
        headers["x-tokenyard-backend"] = ctx.backend
    if ctx.pool is not None:
        headers["x-tokenyard-queue-ms"] = str(int(ctx.queue_s * 1000))
    headers.update(ctx.response_headers)  # set by the traffic stages (x-ratelimit-*, x-tokenyard-degraded)
    return headers


def abort_upstream(ctx: RequestContext, metrics: GatewayMetrics, upstream: H1Response | None,
                   loop: asyncio.AbstractEventLoop) -> str:
    """Close the upstream at once after a cancellation; record why and how long it took. Returns the reason."""
    seen = ctx.abort_started or monotonic()
    if upstream is not None:
        upstream.close()  # closes the connection itself: never back to the pool half-read
    reason = ctx.abort_reason or "client_disconnect"
    if reason == "upstream_timeout":
        metrics.upstream_aborts.labels(reason).inc()
    else:
        metrics.aborts_by_reason[reason].inc()
    metrics.cancel_latency.observe(monotonic() - seen)
    return reason


def gateway_abort_error(ctx: RequestContext) -> GatewayError:
    """The error a still-connected client gets when the gateway aborted its request before answering."""
    task = ctx.task
    if task is not None:
        task.uncancel()
    reason = ctx.abort_reason
    outcome = "expired" if reason == "deadline" else "error"
    return GatewayError(_ABORT_STATUS[reason], _ABORT_MESSAGE[reason], reason, outcome=outcome)


async def relay_whole(ctx: RequestContext, upstream: H1Response, series: RequestSeries) -> web.Response:
    """Read the whole upstream body (the caller handles cancellation) and answer with it; read its usage.

    A non-200 answer (of a streaming request too: the upstream refused before its stream began) is normalised
    to OpenAI's error body and a contract status (``upstream_errors``)."""
    body = await upstream.read()
    status = upstream.status
    if ctx.transcript is not None:
        ctx.transcript += body
    headers = gateway_headers(ctx)
    if status == 200:
        usage = find_usage(body)
        if usage is not None:
            ctx.prompt_tokens = usage.prompt_tokens
            ctx.completion_tokens = usage.completion_tokens
        ctx.outcome = "completed"
        headers["Content-Type"] = upstream.headers.get("Content-Type", "application/json")
    else:
        # Whatever the upstream's error looks like, the client gets OpenAI's error body and a contract status.
        error = normalise_upstream_error(status, body)
        status, body = error.status, error.body()
        ctx.outcome = error.outcome
        headers["Content-Type"] = "application/json"
        if status in RETRY_LATER:
            headers["Retry-After"] = upstream.headers.get("Retry-After", "1")
    ctx.status = status
    return web.Response(status=status, body=body, headers=headers)


async def relay_stream(ctx: RequestContext, upstream: H1Response, series: RequestSeries,
                       metrics: GatewayMetrics, watchdog: Watchdog, heartbeat_s: float = 0.0) -> web.StreamResponse:
    """Pass an SSE stream through; end it with an ``error`` event (never ``[DONE]``) if the upstream dies.

    ``heartbeat_s`` > 0: a ``: keep-alive`` comment after that much silence between events (``heartbeat``).
    The client of a coalescing leader (``STREAM_TAP`` with followers) leaving does not end the upstream while a
    follower still reads it: the relay goes on into the tap (``tap.complete`` once ``[DONE]`` came), outcome
    ``client_aborted``; the last follower leaving then closes it. A gateway abort ends it for all.
    """
    loop = watchdog.loop
    resp = ctx.request.get(QUEUED_STREAM)  # already committed while queued: go on on it
    if resp is None:
        headers = gateway_headers(ctx)
        headers["Content-Type"] = SSE_CONTENT_TYPE
        headers["Cache-Control"] = "no-cache"
        resp = web.StreamResponse(status=200, headers=headers)
        await resp.prepare(ctx.request)
    ctx.status = 200
    framer = SseFramer()
    tap = ctx.request.get(STREAM_TAP)
    done = False
    gone = False  # the client left; the upstream goes on for the coalesced followers
    content_events = 0
    usage = None
    last_token = 0.0
    itl = series.itl
    chunks = HeartbeatChunks(upstream.content, resp, lambda: framer.at_event_start, heartbeat_s)

    def leave() -> bool:
        """The client left: True to go on for the followers (they are reading, no gateway abort)."""
        nonlocal gone
        if tap is None or tap.followers <= 0 or ctx.abort_reason:
            return False
        if not gone:
            gone = True
            chunks.set_response(None)
            metrics.stream_disconnects.labels(ctx.klass, "false").inc()
        return True

    try:
        while True:
            try:
                try:
                    chunk = await chunks.__anext__()
                except StopAsyncIteration:
                    break
                out, events = framer.feed(chunk)
                done_here, tokens_here, usage = scan_events(events, usage)
                done = done or done_here
                if tap is not None:
                    tap.write(out)  # the cache and coalesced followers get the same bytes
                if ctx.transcript is not None:
                    ctx.transcript += out
                if tokens_here:
                    now = monotonic()
                    if content_events == 0:
                        ctx.ttft = now - ctx.started
                        series.ttft.observe(ctx.ttft)
                        watchdog.got_first = True
                    else:
                        itl.observe(now - last_token)
                    last_token = watchdog.last = now
                    content_events += tokens_here
                if gone:
                    if tap is not None and tap.followers <= 0:  # the last follower left too: stop generating
                        abort_upstream(ctx, metrics, upstream, loop)
                        break
                else:
                    await resp.write(out)
            except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):
                done = False
                break
            except asyncio.CancelledError:
                if leave():
                    if ctx.task is not None:
                        ctx.task.uncancel()  # it was this client leaving: the task reads on for the followers
                    continue
                abort_upstream(ctx, metrics, upstream, loop)
                ctx.completion_tokens = content_events
                if not ctx.abort_reason:
                    ctx.outcome = "client_aborted"
                    if not gone:
                        metrics.stream_disconnects.labels(ctx.klass, "false").inc()  # no resume window: aborted
                    raise
                gateway_abort_error(ctx)  # uncancels; the client is still here and gets an error event
                ctx.outcome = "expired" if ctx.abort_reason == "deadline" else "error"
                if not gone:
                    await resp.write(framer.error_event(_ABORT_MESSAGE[ctx.abort_reason], ctx.abort_reason))
                return resp
            except ConnectionResetError:
                if not leave():
                    raise
        if usage is not None:
            ctx.prompt_tokens = usage.prompt_tokens
            ctx.completion_tokens = usage.completion_tokens
        else:
            ctx.completion_tokens = content_events
        if gone:
            ctx.outcome = "client_aborted"
            if tap is not None:
                tap.complete = done
            if not done:
                upstream.close()
        elif done:
            ctx.outcome = "completed"
            await resp.write_eof()
        else:
            upstream.close()
            ctx.outcome = "upstream_interrupted"
            await resp.write(framer.error_event("the upstream closed the stream before it was complete",
                                                "upstream_interrupted"))
            await resp.write_eof()
    except ConnectionResetError:
        # A write to the client failed: it left between two chunks (before aiohttp noticed and cancelled us).
        if upstream is not None and not upstream.closed:
            abort_upstream(ctx, metrics, upstream, loop)
        ctx.outcome = "client_aborted"
        metrics.stream_disconnects.labels(ctx.klass, "false").inc()
        if ctx.completion_tokens == 0:
            ctx.completion_tokens = content_events
    finally:
        chunks.stop()
    return resp
