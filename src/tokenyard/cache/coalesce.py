"""Singleflight: identical deterministic requests in flight at the same time share one upstream call.

The first request with a key leads: it goes upstream and publishes what it gets into its ``Flight``. Requests
with the same key that arrive meanwhile follow: a whole answer is handed to them when it is complete; a stream is
handed over chunk by chunk (a late joiner first gets every chunk sent so far, then follows live). The flight
ends when the leader's request ends; a follower of a leader that failed before sending anything goes upstream
itself, so a leader's failure never fails its followers without a try of their own. A stream's leader whose client
leaves midway keeps relaying into the flight while a follower reads it (``relay.relay_stream``), so a client
leaving never ends the others' stream; the last one leaving ends the upstream.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from tokenyard.cache.store import CachedAnswer


class Flight:
    """What one leader publishes: stream chunks as they are relayed, then the end (a whole answer or none)."""

    __slots__ = ("_changed", "answer", "chunks", "complete", "done", "events", "followers", "ok")

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.events = 0  # complete SSE events relayed so far (the id of the last one)
        self.done = False
        self.ok = False
        self.answer: CachedAnswer | None = None
        self.followers = 0  # followers still reading (each one leaving takes itself off)
        # The relay read the whole stream (``[DONE]``) though the leader's own client left midway: the followers
        # kept it going, and what was relayed is the complete answer.
        self.complete = False
        self._changed = asyncio.Event()

    def write(self, chunk: bytes) -> None:
        """A chunk the leader relayed to its client (its ``id:`` lines included)."""
        self.chunks.append(chunk)
        self.events += chunk.count(b"\n\n")
        self._wake()

    def finish(self, ok: bool, answer: CachedAnswer | None = None) -> None:
        """The leader's request ended; ``ok`` when it completed, ``answer`` its whole response when known."""
        self.done = True
        self.ok = ok
        self.answer = answer
        self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def changed(self) -> None:
        """Wait for the next chunk or the end."""
        if not self.done:
            await self._changed.wait()

    def body(self) -> bytes:
        return b"".join(self.chunks)


class Singleflight:
    """Flights by key, in this process. ``join(key)`` -> ``(flight, leader)``; the leader calls ``end(key)``."""

    def __init__(self) -> None:
        self._flights: dict[str, Flight] = {}

    def __len__(self) -> int:
        return len(self._flights)

    def join(self, key: str) -> tuple[Flight, bool]:
        flight = self._flights.get(key)
        if flight is not None and not flight.done:
            flight.followers += 1
            return flight, False
        flight = self._flights[key] = Flight()
        return flight, True

    def end(self, key: str, flight: Flight, ok: bool, answer: CachedAnswer | None = None) -> None:
        flight.finish(ok, answer)
        if self._flights.get(key) is flight:
            del self._flights[key]


# The relay copies every chunk it writes to the client into the request's tap, when there is one.
STREAM_TAP = web.RequestKey("tokenyard_stream_tap", Flight)
