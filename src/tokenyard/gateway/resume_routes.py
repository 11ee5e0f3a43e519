"""``GET /v1/streams/{request_id}``: resume a dropped stream with ``Last-Event-ID: N``.

Answers the buffered events after N, then follows the stream live until its final event (``[DONE]`` or an
``error`` event). Only the tenant that started the stream may resume it (any other caller gets the same 404 as
for an unknown id). Errors, in OpenAI's format: 400 ``invalid_last_event_id``; 404 ``stream_not_found`` (never
resumable, another tenant's, or its window closed); 410 ``resume_buffer_overflow`` (events after N were already
dropped from the bounded buffer: the answer cannot be completed without a gap, so it is refused).

With a shared state (``state: redis``) a replica that does not own the stream serves it from the mirrored buffer
and follows new events by polling it, while the owner keeps the upstream (told on ``tokenyard:resume``).
"""

from __future__ import annotations

import asyncio
from time import monotonic
from typing import TYPE_CHECKING

import msgspec
from aiohttp import web

from tokenyard.gateway.errors import error_response
from tokenyard.gateway.heartbeat import KEEP_ALIVE
from tokenyard.gateway.relay import SSE_CONTENT_TYPE
from tokenyard.gateway.resume import (
    ResumeGap,
    ResumeRegistry,
    StreamRecord,
    event_id,
    events_key,
    is_final,
    meta_key,
)
from tokenyard.security.service import PRINCIPAL
from tokenyard.state import SharedState, StateUnavailable

if TYPE_CHECKING:
    from tokenyard.gateway.services import Gateway

POLL_S = 0.05  # how often a replica serving another replica's stream looks for new events
META_CHECK_S = 1.0  # and how often it checks that the stream still exists (the owner may expire it)
MAX_LAST_EVENT_ID = 2**53


def _sse_headers(request_id: str) -> dict[str, str]:
    return {"Content-Type": SSE_CONTENT_TYPE, "Cache-Control": "no-cache", "x-request-id": request_id}


def _error_event(message: str, code: str) -> bytes:
    body = msgspec.json.encode({"error": {"message": message, "type": "upstream_error", "code": code}})
    return b"event: error\ndata: %s\n\n" % body


def _gap_response(exc: ResumeGap) -> web.Response:
    return error_response(410, f"cannot resume after event {exc.last_seen}: the resume buffer no longer holds "
                               f"events {exc.last_seen + 1}..{exc.oldest - 1} (it overflowed); start a new request",
                          "resume_buffer_overflow")


def parse_last_event_id(request: web.Request) -> int | None:
    """``Last-Event-ID`` (or ``?last_event_id=``), 0 when absent; None when it is not a whole number >= 0."""
    raw = request.headers.get("Last-Event-ID", request.query.get("last_event_id", "0")).strip() or "0"
    if not raw.isdigit() or len(raw) > 16:
        return None
    value = int(raw)
    return value if value <= MAX_LAST_EVENT_ID else None


async def serve_local(request: web.Request, registry: ResumeRegistry, record: StreamRecord, last_seen: int,
                      heartbeat_s: float) -> web.StreamResponse:
    """Replay the buffered events after ``last_seen``, then follow the live stream (this replica owns it)."""
    registry.attach(record, monotonic())
    delivered = False
    resp = web.StreamResponse(status=200, headers=_sse_headers(record.request_id))
    try:
        await resp.prepare(request)
        sent = last_seen
        while True:
            try:
                events = record.buffer.after(sent)
            except ResumeGap as exc:
                await resp.write(_error_event(str(exc) + " (the resume buffer overflowed)",
                                              "resume_buffer_overflow"))
                break
            if events:
                await resp.write(b"".join(events))
                sent = event_id(events[-1])
                continue
            if record.buffer.ended or record.finished:
                delivered = record.buffer.ended
                break
            if record.expired:
                await resp.write(_error_event("the stream was closed by the gateway", "stream_closed"))
                break
            if not await record.changed(heartbeat_s or None):
                await resp.write(KEEP_ALIVE)
        await resp.write_eof()
    except ConnectionResetError:
        delivered = False  # the client left again: the window reopens
    finally:
        registry.detach(record, monotonic(), delivered)
    return resp


async def serve_remote(request: web.Request, registry: ResumeRegistry, state: SharedState, tenant: str,
                       request_id: str, last_seen: int, heartbeat_s: float) -> web.StreamResponse:
    """Serve another replica's stream (``tenant``'s ``request_id``) from the shared buffer, polling it."""
    key = events_key(tenant, request_id)
    items = await state.list_range(key)
    if items and last_seen + 1 < event_id(items[0]):
        return _gap_response(ResumeGap(last_seen, event_id(items[0])))
    await registry.tell_owner(tenant, request_id, "attach")
    delivered = False
    resp = web.StreamResponse(status=200, headers=_sse_headers(request_id))
    try:
        await resp.prepare(request)
        sent = last_seen
        position = len(items)
        quiet_since = checked = monotonic()
        while True:
            fresh = [item for item in items if event_id(item) > sent]
            if fresh and event_id(fresh[0]) > sent + 1:
                await resp.write(_error_event(f"events after {sent} are no longer buffered (the resume buffer "
                                              "overflowed)", "resume_buffer_overflow"))
                break
            if fresh:
                await resp.write(b"".join(fresh))
                sent = event_id(fresh[-1])
                quiet_since = monotonic()
                if is_final(fresh[-1]):
                    delivered = True
                    break
            await asyncio.sleep(POLL_S)
            now = monotonic()
            if heartbeat_s and now - quiet_since >= heartbeat_s:
                await resp.write(KEEP_ALIVE)
                quiet_since = now
            items = await state.list_range(key, position)
            if items and event_id(items[0]) != sent + 1:
                items = await state.list_range(key)  # the list was trimmed: positions moved, look up by id
                position = 0
            position += len(items)
            if not items and now - checked >= META_CHECK_S:
                checked = now
                if await state.get(meta_key(tenant, request_id)) is None:
                    await resp.write(_error_event("the stream's resume window closed", "stream_closed"))
                    break
        await resp.write_eof()
    except ConnectionResetError:
        delivered = False
    finally:
        await registry.tell_owner(tenant, request_id, "delivered" if delivered else "detach")
    return resp


def _tenant_of(request: web.Request) -> str:
    principal = request.get(PRINCIPAL)
    return principal.key.tenant if principal is not None else ""


def add_resume_routes(app: web.Application, gw: Gateway) -> None:
    """Register ``GET /v1/streams/{request_id}`` (auth is the HTTP guard's, as for every non-chain /v1 route)."""
    registry = gw.resume
    metrics = gw.metrics
    heartbeat_s = gw.config.streams.heartbeat_s

    async def resume(request: web.Request) -> web.StreamResponse:
        request_id = request.match_info["request_id"]
        last_seen = parse_last_event_id(request)
        if last_seen is None:
            metrics.stream_reconnects.labels("invalid").inc()
            return error_response(400, "Last-Event-ID must be a whole number >= 0 (the id of the last event "
                                       "received)", "invalid_last_event_id")
        tenant = _tenant_of(request)
        not_found = error_response(404, f"no resumable stream {request_id!r} (unknown, not yours, or its resume "
                                        "window closed)", "stream_not_found")
        record = registry.records.get(request_id)
        # Another tenant's stream with this id (it chose the same x-request-id) is not this caller's: look in the
        # shared state for the caller's own, else 404 as for an unknown id.
        if record is not None and not record.expired and record.tenant == tenant:
            try:
                record.buffer.after(last_seen)
            except ResumeGap as exc:
                metrics.stream_reconnects.labels("overflow").inc()
                return _gap_response(exc)
            metrics.stream_reconnects.labels("resumed").inc()
            return await serve_local(request, registry, record, last_seen, heartbeat_s)
        state = registry.state
        if state is not None:
            try:
                meta = await state.get(meta_key(tenant, request_id))  # only ever this tenant's record
                if meta is not None and msgspec.json.decode(meta).get("tenant") == tenant:
                    response = await serve_remote(request, registry, state, tenant, request_id, last_seen,
                                                  heartbeat_s)
                    result = "overflow" if response.status == 410 else "resumed"
                    metrics.stream_reconnects.labels(result).inc()
                    return response
            except StateUnavailable:
                return error_response(503, "the shared state is unavailable: cannot resume a stream owned by "
                                           "another replica", "state_unavailable")
        metrics.stream_reconnects.labels("not_found").inc()
        return not_found

    async def on_shutdown(app: web.Application) -> None:
        registry.expire_detached()  # detached streams would otherwise hold the shutdown for their window

    app.router.add_get("/v1/streams/{request_id}", resume)
    app.on_shutdown.append(on_shutdown)
