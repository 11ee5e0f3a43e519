"""SSE heartbeats: a comment line (``: keep-alive``) when a stream has been silent for a while.

Proxies, NATs, load balancers and VPNs drop connections that carry nothing for tens of seconds; a long prefill or
a slow upstream is exactly that. SSE comments are ignored by every client (the OpenAI SDKs included), so a
heartbeat changes nothing but the idle timer of the middleboxes. It is written only between two events, never
inside one (the relay forwards upstream bytes as they come, and a chunk can end mid-event).

Cost per token matters here (a stream relays thousands of chunks): one timer per stream is re-armed only when it
fires, never per chunk; a chunk just stores its arrival time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from time import monotonic

from aiohttp import web

from tokenyard.upstream.body import BodyStream

KEEP_ALIVE = b": keep-alive\n\n"
# The SSE response committed while a streaming request still waited for admission (``queued_stream``); the relay
# goes on writing on it instead of starting a response of its own.
QUEUED_STREAM = web.RequestKey("tokenyard_queued_stream", web.StreamResponse)


class HeartbeatChunks:
    """``async for chunk in HeartbeatChunks(content, resp, at_event_start, interval_s)``: the upstream's chunks
    (as ``readany``), with a heartbeat written to ``resp`` after every ``interval_s`` of silence.

    ``at_event_start()`` says whether the client's stream is between two events (a heartbeat is allowed);
    ``interval_s`` 0 turns heartbeats off (plain ``readany``). ``sent`` counts the heartbeats written. ``stop()``
    ends the timer early (it also ends by itself once the body is over).
    """

    __slots__ = ("_at_event_start", "_content", "_interval_s", "_quiet_since", "_resp", "_timer", "sent")

    def __init__(self, content: BodyStream, resp: web.StreamResponse | None, at_event_start: Callable[[], bool],
                 interval_s: float) -> None:
        self._content = content
        self._resp = resp
        self._at_event_start = at_event_start
        self._interval_s = interval_s if resp is not None else 0.0
        self._quiet_since = monotonic()
        self._timer: asyncio.TimerHandle | None = None
        self.sent = 0

    def set_response(self, resp: web.StreamResponse | None) -> None:
        """Where heartbeats go; None stops them (the client left)."""
        self._resp = resp

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm(self) -> None:
        self._timer = asyncio.get_running_loop().call_later(
            max(0.0, self._quiet_since + self._interval_s - monotonic()), self._fire)

    def _fire(self) -> None:
        content = self._content
        if content.complete or content.exception() is not None:
            self._timer = None
            return
        if monotonic() - self._quiet_since >= self._interval_s:
            content.interrupt()  # the reader writes the heartbeat (never two writers on one response)
        self._arm()

    def __aiter__(self) -> HeartbeatChunks:
        return self

    async def __anext__(self) -> bytes:
        interval = self._interval_s
        if interval <= 0:
            chunk = await self._content.readany()
        else:
            if self._timer is None:
                self._arm()
            while True:
                found = await self._content.next_chunk()
                now = monotonic()
                if found is not None:
                    chunk = found
                    self._quiet_since = now
                    break
                if now - self._quiet_since >= interval and self._resp is not None and self._at_event_start():
                    await self._resp.write(KEEP_ALIVE)
                    self.sent += 1
                    self._quiet_since = now
        if not chunk:
            self.stop()
            raise StopAsyncIteration
        return chunk
