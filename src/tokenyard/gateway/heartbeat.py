"""SSE heartbeats: a comment line (``: keep-alive``) when a stream has been silent for a while.

Proxies, NATs, load balancers and VPNs drop connections that carry nothing for tens of seconds; a long prefill or
a slow upstream is exactly that. SSE comments are ignored by every client (the OpenAI SDKs included), so a
heartbeat changes nothing but the idle timer of the middleboxes. It is written only between two events, never
inside one (the relay forwards upstream bytes as they come, and a chunk can end mid-event).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

from aiohttp import web

KEEP_ALIVE = b": keep-alive\n\n"
# The SSE response committed while a streaming request still waited for admission (``queued_stream``); the relay
# goes on writing on it instead of starting a response of its own.
QUEUED_STREAM = web.RequestKey("tokenyard_queued_stream", web.StreamResponse)


class ChunkSource(Protocol):
    """What the relays read an upstream body from (``BodyStream``; aiohttp's ``StreamReader`` fits too)."""

    async def readany(self) -> bytes: ...


class HeartbeatChunks:
    """``async for chunk in HeartbeatChunks(content, resp, at_event_start, interval_s)``: the upstream's chunks
    (as ``iter_any``), with a heartbeat written to ``resp`` after every ``interval_s`` of silence.

    ``at_event_start()`` says whether the client's stream is between two events (a heartbeat is allowed);
    ``interval_s`` 0 turns heartbeats off (plain ``readany``). ``sent`` counts the heartbeats written.
    """

    __slots__ = ("_at_event_start", "_content", "_interval_s", "_resp", "sent")

    def __init__(self, content: ChunkSource, resp: web.StreamResponse | None, at_event_start: Callable[[], bool],
                 interval_s: float) -> None:
        self._content = content
        self._resp = resp
        self._at_event_start = at_event_start
        self._interval_s = interval_s if resp is not None else 0.0
        self.sent = 0

    def set_response(self, resp: web.StreamResponse | None) -> None:
        """Where heartbeats go; None stops them (the client left)."""
        self._resp = resp

    def __aiter__(self) -> HeartbeatChunks:
        return self

    async def __anext__(self) -> bytes:
        interval = self._interval_s
        if interval <= 0:
            chunk = await self._content.readany()
        else:
            while True:
                try:
                    async with asyncio.timeout(interval):
                        chunk = await self._content.readany()
                    break
                except TimeoutError:
                    # Only our own timeout lands here (asyncio.timeout re-raises an outer cancellation as is).
                    if self._resp is not None and self._at_event_start():
                        await self._resp.write(KEEP_ALIVE)
                        self.sent += 1
        if not chunk:
            raise StopAsyncIteration
        return chunk
