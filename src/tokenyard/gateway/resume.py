"""Resumable streams: the bounded replay buffer of one stream, and the registry of streams that can be resumed.

A stream of a class with ``resume_window_ms`` > 0 gets a ``StreamRecord`` when its relay starts. Its events
(already framed with ``id: N``) go into an ``EventBuffer``; readers ("consumers": the original client, then
whoever resumes) attach and detach. When the last one detaches, the window opens: a timer that, unless a reader
attaches first, expires the record (the relay then aborts the upstream and the record is gone: 404).

The protocol, for the relay and the resume route:

- ``registry.open(...)``: the original client is the first consumer.
- ``registry.detach(record, now)``: a consumer left (or finished); at zero consumers the window timer starts.
- ``registry.attach(record, now)``: a consumer arrived; a pending window is cancelled and the gap is measured.
- ``registry.append(record, framed)``: new bytes from the upstream; wakes readers; mirrors complete events to
  the shared state (``state: redis``) so another replica can serve the resume.

With a shared state, the record's metadata (tenant, class) is in ``resume:t<len>:<tenant>:<id>:meta`` and its
events in ``...:events``: keyed by tenant too, so two tenants that send the same ``x-request-id`` to two replicas
never share (or overwrite, or delete) a record. A replica serving a resume of a stream it does not own tells the
owner on the ``tokenyard:resume`` channel (``attach``/``detach``, with the tenant), so the owner's window logic
sees that reader too. The subscription to that channel is retried in the background while the state is down (the
gateway starts and serves without it: only cross-replica resume is degraded meanwhile).

One record per request id: the request id stage refuses a client-chosen id that is in flight or still has a
record (409 ``request_id_in_use``), so ``open`` never meets an id in use; if it does, it refuses rather than
touch the other stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from time import monotonic

import msgspec

from tokenyard.config.streams import StreamsConfig
from tokenyard.gateway.errors import GatewayError
from tokenyard.state import SharedState, StateUnavailable, Subscription
from tokenyard.state.subscribe import subscribe_when_up
from tokenyard.telemetry.metrics import GatewayMetrics

log = logging.getLogger("tokenyard.gateway.resume")

CHANNEL = "tokenyard:resume"
_ERROR_EVENT = b"\nevent: error\n"
_DONE = b"\ndata: [DONE]"
SHARED_TTL_S = 60.0  # beyond the window: a crashed owner's records disappear by themselves this long after
META_REFRESH_S = 10.0  # how often a live stream's shared metadata has its TTL renewed


class RequestIdInUse(GatewayError):
    """``open`` was given the id of a stream that is still registered (the request id stage prevents it)."""

    def __init__(self, request_id: str) -> None:
        super().__init__(409, f"x-request-id {request_id!r} already has a resumable stream", "request_id_in_use",
                         param="x-request-id")


def _record_key(tenant: str, request_id: str) -> str:
    # The tenant's length first: "a:b" + "c" and "a" + "b:c" must not meet (ids may contain ':').
    return f"resume:t{len(tenant)}:{tenant}:{request_id}"


def meta_key(tenant: str, request_id: str) -> str:
    return _record_key(tenant, request_id) + ":meta"


def events_key(tenant: str, request_id: str) -> str:
    return _record_key(tenant, request_id) + ":events"


def event_id(event: bytes) -> int:
    """The ``N`` of an event framed as ``id: N\\n...``; -1 when it has none."""
    if not event.startswith(b"id: "):
        return -1
    end = event.find(b"\n")
    try:
        return int(event[4:end])
    except ValueError:
        return -1


def is_final(event: bytes) -> bool:
    """True for the event that ends a stream: ``data: [DONE]`` or an ``error`` event."""
    return _DONE in event or _ERROR_EVENT in event


class ResumeGap(Exception):
    """Events the reader has not seen were already dropped from the bounded buffer."""

    def __init__(self, last_seen: int, oldest: int) -> None:
        super().__init__(f"events {last_seen + 1}..{oldest - 1} are no longer buffered")
        self.last_seen = last_seen
        self.oldest = oldest


class EventBuffer:
    """The newest events of one stream, within ``max_events`` and ``max_bytes``; no I/O, no clock.

    ``feed`` takes the relay's framed bytes in any chunking and keeps complete events (each ``id: N`` ... blank
    line). ``after(n)`` returns the events with id > n, or raises ``ResumeGap`` if some of them were dropped.
    """

    __slots__ = ("_bytes", "_events", "_partial", "dropped", "ended", "last_id", "max_bytes", "max_events")

    def __init__(self, max_events: int, max_bytes: int) -> None:
        self.max_events = max_events
        self.max_bytes = max_bytes
        self._events: deque[tuple[int, bytes]] = deque()
        self._bytes = 0
        self._partial = b""
        self.dropped = 0  # events pushed out by the bounds
        self.last_id = 0
        self.ended = False  # the final event ([DONE] or error) is in

    def feed(self, framed: bytes) -> list[bytes]:
        """Add framed bytes; returns the events they completed."""
        data = self._partial + framed if self._partial else framed
        done: list[bytes] = []
        start = 0
        while True:
            end = data.find(b"\n\n", start)
            if end < 0:
                break
            event = data[start:end + 2]
            start = end + 2
            number = event_id(event)
            if number < 0:
                continue  # a comment or stray bytes: not part of the replayable stream
            self._push(number, event)
            done.append(event)
        self._partial = data[start:]
        return done

    def push_event(self, event: bytes) -> None:
        """Add one complete framed event (used by tests and the shared-state reader)."""
        number = event_id(event)
        if number >= 0:
            self._push(number, event)

    def _push(self, number: int, event: bytes) -> None:
        self._events.append((number, event))
        self._bytes += len(event)
        self.last_id = number
        if is_final(event):
            self.ended = True
        while len(self._events) > self.max_events or (self._bytes > self.max_bytes and len(self._events) > 1):
            _, old = self._events.popleft()
            self._bytes -= len(old)
            self.dropped += 1

    @property
    def oldest_id(self) -> int:
        return self._events[0][0] if self._events else self.last_id + 1

    def after(self, last_seen: int) -> list[bytes]:
        """The buffered events with id > ``last_seen``; ``ResumeGap`` when some were dropped already."""
        if self.dropped and last_seen + 1 < self.oldest_id:
            raise ResumeGap(last_seen, self.oldest_id)
        return [event for number, event in self._events if number > last_seen]


class StreamRecord:
    """One resumable stream: its buffer, readers, window and what it cost while nobody read it."""

    __slots__ = ("_changed", "_timer", "buffer", "consumers", "delivered", "detached_at", "expired", "finished",
                 "klass", "meta", "meta_at", "model", "on_expire", "owner", "request_id", "resumed", "shared",
                 "tenant", "window_s", "window_tokens")

    def __init__(self, request_id: str, tenant: str, model: str, klass: str, window_s: float,
                 buffer: EventBuffer) -> None:
        self.request_id = request_id
        self.tenant = tenant
        self.model = model
        self.klass = klass
        self.window_s = window_s
        self.buffer = buffer
        self.consumers = 1  # the original client
        self.detached_at: float | None = None
        self.resumed = False
        self.delivered = False  # a reader got the whole answer, final event included
        self.expired = False
        self.finished = False  # the upstream is done (completed, failed or aborted)
        self.window_tokens = 0  # tokens generated since the last detach
        self.shared = False  # mirrored in the shared state
        self.meta = b""  # its shared metadata, and when its TTL was last renewed
        self.meta_at = 0.0
        self.on_expire: Callable[[], None] | None = None
        self.owner: asyncio.Task[object] | None = None  # the handler task relaying the upstream (this replica)
        self._changed: asyncio.Event = asyncio.Event()
        self._timer: asyncio.TimerHandle | None = None

    def notify(self) -> None:
        self._changed.set()

    async def changed(self, timeout_s: float | None) -> bool:
        """Wait for new events or a state change; False when ``timeout_s`` passed first."""
        try:
            async with asyncio.timeout(timeout_s):
                await self._changed.wait()
        except TimeoutError:
            return False
        self._changed.clear()
        return True


class ResumeRegistry:
    """The resumable streams of one gateway (and, with a shared state, the way to reach other replicas')."""

    def __init__(self, config: StreamsConfig, metrics: GatewayMetrics) -> None:
        self.config = config
        self.metrics = metrics
        self.records: dict[str, StreamRecord] = {}
        self.state: SharedState | None = None
        self._follower: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[bool]] = set()
        self.following = False  # subscribed to the channel (False while the shared state was down since start)

    async def start(self, state: SharedState | None) -> None:
        """Use ``state`` (a Redis-backed one) to mirror buffers and hear remote attach/detach; None: local only.

        Never fails on an unreachable state: the subscription is retried in the background until it works."""
        self.state = state
        if state is not None:
            subscription = None
            with contextlib.suppress(StateUnavailable):  # subscribed before start returns when the state is up
                subscription = await state.subscribe(CHANNEL)
            self._follower = asyncio.create_task(self._subscribe_and_follow(state, subscription),
                                                 name="tokenyard-resume-follow")

    def expire_detached(self) -> None:
        """Close every open window now (the gateway is shutting down: nobody will be served a resume)."""
        for record in list(self.records.values()):
            if record.consumers == 0:
                self._expire(record)

    async def close(self) -> None:
        """Expire every record at once (their relays abort their upstreams) and stop listening."""
        owners = [r.owner for r in self.records.values() if r.owner is not None and not r.owner.done()]
        for record in list(self.records.values()):
            self._expire(record)
        if owners:  # let the relays close their upstreams before the connection pool goes
            await asyncio.wait(owners, timeout=5.0)
        if self._follower is not None:
            self._follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._follower
            self._follower = None
        for task in list(self._background):
            with contextlib.suppress(Exception):
                await task

    # -- the protocol ------------------------------------------------------------------------------------------
    def open(self, request_id: str, tenant: str, model: str, klass: str, window_s: float) -> StreamRecord:
        buffer = EventBuffer(self.config.resume_buffer_events, self.config.resume_buffer_bytes)
        record = StreamRecord(request_id, tenant, model, klass, window_s, buffer)
        if request_id in self.records:
            # Never expire (and so cut off) another stream because an id came twice: refuse the newcomer.
            raise RequestIdInUse(request_id)
        self.records[request_id] = record
        if self.state is not None:
            record.shared = True
            record.meta = msgspec.json.encode({"tenant": tenant, "model": model, "class": klass,
                                               "window_ms": int(window_s * 1000)})
            record.meta_at = monotonic()
            self._spawn(self._state_call(self.state.set(meta_key(tenant, request_id), record.meta,
                                                        ttl_s=window_s + SHARED_TTL_S)))
        return record

    async def append(self, record: StreamRecord, framed: bytes) -> None:
        """New framed bytes from the upstream: buffer them, mirror them, wake the readers."""
        events = record.buffer.feed(framed)
        if events:
            record.notify()
            state = self.state
            if record.shared and state is not None:
                key = events_key(record.tenant, record.request_id)
                ttl_s = record.window_s + SHARED_TTL_S
                now = monotonic()
                if now - record.meta_at >= META_REFRESH_S:
                    record.meta_at = now
                    self._spawn(self._state_call(state.set(meta_key(record.tenant, record.request_id), record.meta,
                                                          ttl_s=ttl_s)))
                for event in events:
                    # In order, one call per event; an unreachable state costs at most its timeout and only
                    # the cross-replica resume (this replica keeps serving from memory).
                    if not await self._state_call(state.append(key, event, self.config.resume_buffer_events,
                                                               ttl_s=ttl_s)):
                        record.shared = False
                        break

    def attach(self, record: StreamRecord, now: float) -> None:
        """A reader arrived (a resume): cancel the window, count the resume and the time it lost."""
        record.consumers += 1
        if record._timer is not None:
            record._timer.cancel()
            record._timer = None
        if record.detached_at is not None:
            record.resumed = True
            self.metrics.stream_resumes.labels(record.klass).inc()
            self.metrics.resume_gap.labels(record.klass).observe(max(0.0, now - record.detached_at))
            record.detached_at = None
            record.window_tokens = 0
        record.notify()

    def detach(self, record: StreamRecord, now: float, delivered: bool = False) -> None:
        """A reader left, or finished (``delivered``: it wrote the final event); with none left, the window opens
        (after a delivery too: a client that lost the last bytes can still come back for them)."""
        record.consumers = max(0, record.consumers - 1)
        if delivered:
            record.delivered = True
        if record.consumers or record.expired:
            return
        record.detached_at = now
        if record._timer is not None:
            record._timer.cancel()
        record._timer = asyncio.get_running_loop().call_later(record.window_s, self._expire, record)
        record.notify()

    def finish(self, record: StreamRecord) -> None:
        """The upstream is done; readers drain the buffer, the record lives until its window closes."""
        record.finished = True
        record.notify()

    def _expire(self, record: StreamRecord) -> None:
        """The window closed with no reader: forget the stream; its relay aborts the upstream if still running."""
        if record.expired:
            return
        record.expired = True
        if record._timer is not None:
            record._timer.cancel()
            record._timer = None
        if self.records.get(record.request_id) is record:
            del self.records[record.request_id]
        if record.window_tokens:  # generated since the last reader left, and nobody came back for them
            self.metrics.resume_window_tokens.labels(record.klass).inc(record.window_tokens)
        if record.on_expire is not None:
            record.on_expire()
        record.notify()
        if record.shared and self.state is not None:
            state = self.state
            self._spawn(self._state_call(state.delete(meta_key(record.tenant, record.request_id))))
            self._spawn(self._state_call(state.delete(events_key(record.tenant, record.request_id))))

    # -- other replicas ----------------------------------------------------------------------------------------
    async def tell_owner(self, tenant: str, request_id: str, op: str) -> None:
        """Tell the owner of ``tenant``'s ``request_id`` about a reader here: ``attach``, ``detach``, ``delivered``."""
        if self.state is not None:
            message = msgspec.json.encode({"id": request_id, "tenant": tenant, "op": op})
            await self._state_call(self.state.publish(CHANNEL, message))

    async def _subscribe_and_follow(self, state: SharedState, subscription: Subscription | None) -> None:
        if subscription is None:
            subscription = await subscribe_when_up(state, CHANNEL, log, "cross-replica resume")
        self.following = True
        await self._follow(subscription)

    async def _follow(self, subscription: Subscription) -> None:
        try:
            async for message in subscription:
                try:
                    decoded = msgspec.json.decode(message)
                    record = self.records.get(str(decoded["id"]))
                    tenant = decoded.get("tenant")
                    op = decoded["op"]
                except (msgspec.DecodeError, KeyError, TypeError, AttributeError):
                    continue
                if record is None or record.expired or record.tenant != tenant:
                    continue  # another tenant's stream that happens to have the same id (on another replica)
                if op == "attach":
                    self.attach(record, monotonic())
                elif op in ("detach", "delivered"):
                    self.detach(record, monotonic(), delivered=op == "delivered")
        finally:
            await subscription.aclose()

    def _spawn(self, coro: Coroutine[object, object, bool]) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _state_call(self, awaitable: Awaitable[object]) -> bool:
        """Await a shared-state call; False (logged) when the state is unreachable."""
        try:
            await awaitable
        except StateUnavailable as exc:
            log.warning("resume: shared state unavailable: %s", exc)
            return False
        return True
