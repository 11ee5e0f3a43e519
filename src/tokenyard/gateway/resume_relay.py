"""The relay of a resumable stream: the upstream keeps going when the client drops, for the class's window.

The handler task that relays the stream is also the one reading the upstream. When the client leaves, aiohttp
cancels that task; here the cancellation is taken back (``uncancel``), the client is marked gone
(``registry.detach``) and the task goes on reading the upstream into the stream's buffer. A reader coming back
within the window (``GET /v1/streams/{id}``, ``resume_routes``) drains the buffer and follows live. If the
window closes first, the registry cancels this task again and the upstream is closed at once (reason
``client_disconnect``), exactly as without a window, only later.

Outcome of the original request: ``completed`` when its client stayed, ``client_resumed`` when it left and a
reader came back, ``client_aborted`` when the window closed with nobody back, ``upstream_interrupted`` when the
upstream died (an ``error`` event ends the stream, for the client or whoever resumes).
"""

from __future__ import annotations

import asyncio
from time import monotonic

import aiohttp
from aiohttp import web

from tokenyard.cache.coalesce import STREAM_TAP
from tokenyard.gateway.context import RequestContext
from tokenyard.gateway.heartbeat import QUEUED_STREAM, HeartbeatChunks
from tokenyard.gateway.relay import SSE_CONTENT_TYPE, abort_upstream, gateway_headers
from tokenyard.gateway.resume import ResumeRegistry, StreamRecord
from tokenyard.gateway.sse import SseFramer, scan_events
from tokenyard.gateway.watchdog import Watchdog
from tokenyard.telemetry.metrics import GatewayMetrics, RequestSeries
from tokenyard.upstream.h1_connection import H1Response

RESUME_HEADER = "x-tokenyard-resume"  # where to resume this stream: /v1/streams/{request_id}
_ABORT_MESSAGE = {
    "deadline": "the request's deadline was exceeded",
    "upstream_timeout": "the upstream did not answer in time",
    "admin": "the request was aborted by an administrator",
    "stream_closed": "the gateway closed the stream (it is shutting down)",
}
_UPSTREAM_DIED = (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)


def resume_window_s(ctx: RequestContext, windows_ms: dict[str, int]) -> float:
    """The resume window of the request's class in seconds; 0 when the class has none."""
    return windows_ms.get(ctx.klass, 0) / 1000.0


class _Relay:
    """The state of one resumable relay (kept on an object so the cancel paths share it)."""

    __slots__ = ("attached", "chunks", "content_events", "ctx", "framer", "metrics", "record", "registry", "resp")

    def __init__(self, ctx: RequestContext, resp: web.StreamResponse, record: StreamRecord,
                 registry: ResumeRegistry, metrics: GatewayMetrics, chunks: HeartbeatChunks, framer: SseFramer
                 ) -> None:
        self.ctx = ctx
        self.resp = resp
        self.record = record
        self.registry = registry
        self.metrics = metrics
        self.chunks = chunks
        self.framer = framer
        self.attached = True
        self.content_events = 0

    def client_left(self) -> None:
        """The original client is gone: keep generating into the buffer; the window starts."""
        if not self.attached:
            return
        self.attached = False
        self.chunks.set_response(None)
        self.metrics.stream_disconnects.labels(self.ctx.klass, "true").inc()
        self.registry.detach(self.record, monotonic())

    def on_cancel(self) -> bool:
        """A cancellation arrived: True to stop relaying (gateway abort, window closed), False to go on."""
        task = self.ctx.task
        if self.ctx.abort_reason or self.record.expired or not self.attached:
            return True
        if task is not None:
            task.uncancel()  # it was the client leaving: this task keeps the upstream going
        self.client_left()
        return False


async def relay_resumable(ctx: RequestContext, upstream: H1Response, series: RequestSeries,
                          metrics: GatewayMetrics, watchdog: Watchdog, registry: ResumeRegistry, window_s: float,
                          heartbeat_s: float) -> web.StreamResponse:
    """Relay an SSE stream that stays resumable for ``window_s`` after the client drops (see the module doc)."""
    record = registry.open(ctx.request_id, ctx.tenant, ctx.model, ctx.klass, window_s)  # unique id: observe
    task = ctx.task

    def on_expire() -> None:
        if not record.finished and task is not None and not task.done():
            task.cancel()  # the window closed while the upstream still generates: stop it

    record.on_expire = on_expire
    record.owner = task
    resp = ctx.request.get(QUEUED_STREAM)  # already committed while queued: go on on it
    if resp is None:
        headers = gateway_headers(ctx)
        headers.update({"Content-Type": SSE_CONTENT_TYPE, "Cache-Control": "no-cache",
                        RESUME_HEADER: f"/v1/streams/{ctx.request_id}"})
        resp = web.StreamResponse(status=200, headers=headers)
    ctx.status = 200
    framer = SseFramer()
    chunks = HeartbeatChunks(upstream.content, resp, lambda: framer.at_event_start, heartbeat_s)
    relay = _Relay(ctx, resp, record, registry, metrics, chunks, framer)
    tap = ctx.request.get(STREAM_TAP)
    done = False
    stopped = False
    usage = None
    last_token = 0.0
    while True:
        try:
            if relay.attached and not resp.prepared:
                await resp.prepare(ctx.request)
            try:
                chunk = await chunks.__anext__()
            except StopAsyncIteration:
                break
            out, events = framer.feed(chunk)
            done_here, tokens_here, usage = scan_events(events, usage)
            done = done or done_here
            if tokens_here:
                now = monotonic()
                if relay.content_events == 0:
                    ctx.ttft = now - ctx.started
                    series.ttft.observe(ctx.ttft)
                    watchdog.got_first = True
                else:
                    series.itl.observe(now - last_token)
                last_token = watchdog.last = now
                relay.content_events += tokens_here
                if not relay.attached:
                    record.window_tokens += tokens_here
            await registry.append(record, out)
            if tap is not None:
                tap.write(out)  # coalesced followers read on whether or not this client is still here
            if relay.attached:
                await resp.write(out)
        except _UPSTREAM_DIED:
            break
        except asyncio.CancelledError:
            if relay.on_cancel():
                stopped = True
                break
        except ConnectionResetError:
            relay.client_left()  # a write failed before aiohttp noticed the client leaving
    chunks.stop()
    ctx.completion_tokens = relay.content_events
    if stopped:
        return await _stopped(relay, upstream, watchdog)
    watchdog.stop()  # the upstream is done: nothing more to time
    if usage is not None:
        ctx.prompt_tokens, ctx.completion_tokens = usage.prompt_tokens, usage.completion_tokens
    if not done:
        upstream.close()
        error = framer.error_event("the upstream closed the stream before it was complete", "upstream_interrupted")
        await registry.append(record, error)
        await _write(relay, error)
    registry.finish(record)
    if tap is not None and not relay.attached:
        tap.complete = done  # the whole answer went into the tap though this client left
    if relay.attached:
        try:
            await resp.write_eof()
        except ConnectionResetError:
            relay.client_left()
        except asyncio.CancelledError:
            relay.on_cancel()
    if relay.attached:
        registry.detach(record, monotonic(), delivered=True)  # the record stays a window for a late reconnect
        ctx.outcome = "completed" if done else "upstream_interrupted"
        return resp
    await _wait_for_reader(relay)
    if not done:
        ctx.outcome = "upstream_interrupted"
    else:
        came_back = record.resumed and (record.delivered or record.consumers > 0)
        ctx.outcome = "client_resumed" if came_back else "client_aborted"
    return resp


async def _write(relay: _Relay, data: bytes) -> None:
    if not relay.attached:
        return
    try:
        await relay.resp.write(data)
    except ConnectionResetError:
        relay.client_left()
    except asyncio.CancelledError:
        relay.on_cancel()


async def _wait_for_reader(relay: _Relay) -> None:
    """The upstream finished while the client was away: wait (at most the window) for it to come back."""
    record = relay.record
    while record.consumers == 0 and not record.delivered and not record.expired:
        try:
            await record.changed(None)
        except asyncio.CancelledError:
            task = relay.ctx.task
            if task is not None and relay.ctx.abort_reason:
                task.uncancel()  # an admin abort of a finished stream: nothing left to stop
                return
            raise


async def _stopped(relay: _Relay, upstream: H1Response, watchdog: Watchdog) -> web.StreamResponse:
    """The gateway aborted the stream (deadline, admin, timeout) or its window closed: close the upstream."""
    ctx = relay.ctx
    task = ctx.task
    if task is not None:
        task.uncancel()
    watchdog.stop()
    abort_upstream(ctx, relay.metrics, upstream, watchdog.loop)
    reason = ctx.abort_reason
    if reason or relay.attached:
        # The gateway stopped it (an abort, or its record was closed under a connected client: shutdown): the
        # client, or whoever resumes, gets an error event saying so, never a clean end that looks complete.
        ctx.outcome = "expired" if reason == "deadline" else "error"
        code = reason or "stream_closed"
        error = relay.framer.error_event(_ABORT_MESSAGE.get(code, "the request was aborted"), code)
        await relay.registry.append(relay.record, error)  # whoever resumes learns why it ended
        await _write(relay, error)
    else:
        ctx.outcome = "client_aborted"  # the resume window closed with nobody back
    relay.registry.finish(relay.record)
    if relay.attached:
        relay.registry.detach(relay.record, monotonic())
    return relay.resp
