"""``BodyStream``: the body of one upstream response as it arrives, read without copying more than once.

The connection feeds it (``feed``, ``feed_eof``, ``fail``); the relay reads it (``readany``, ``iter_any``,
``read``). Flow control: above ``HIGH_WATER`` buffered bytes the connection stops reading from the socket, so a
slow client slows the upstream (TCP backpressure) instead of growing the gateway's memory.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

HIGH_WATER = 1 << 16


class BodyStream:
    """An upstream response body. ``readany()`` returns whatever is buffered (waiting when nothing is), ``b""``
    at the end; a broken body raises the connection's error (``aiohttp.ClientPayloadError``)."""

    __slots__ = ("_chunks", "_eof", "_error", "_interrupted", "_pause", "_paused", "_resume", "_size", "_waiter",
                 "total_bytes")

    def __init__(self, pause: Callable[[], None], resume: Callable[[], None]) -> None:
        self._chunks: list[bytes] = []
        self._size = 0
        self._eof = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._pause = pause
        self._resume = resume
        self._paused = False
        self._interrupted = False
        self.total_bytes = 0  # bytes fed so far

    # ----- the connection's side -----

    def feed(self, data: bytes) -> None:
        self._chunks.append(data)
        self._size += len(data)
        self.total_bytes += len(data)
        if self._size > HIGH_WATER and not self._paused:
            self._paused = True
            self._pause()
        self._wake()

    def feed_eof(self) -> None:
        self._eof = True
        self._wake()

    def fail(self, error: BaseException) -> None:
        """The body cannot be completed (connection lost mid-body, malformed framing)."""
        if not self._eof:
            self._error = error
        self._wake()

    def interrupt(self) -> None:
        """Wake the reader without data: ``next_chunk`` returns None once (a timer's turn, e.g. a heartbeat)."""
        self._interrupted = True
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    # ----- the reader's side -----

    def is_eof(self) -> bool:
        """The whole body arrived and was read."""
        return self._eof and not self._chunks

    @property
    def complete(self) -> bool:
        """The whole body arrived (maybe not read yet)."""
        return self._eof

    def exception(self) -> BaseException | None:
        return self._error

    async def wait_readable(self) -> None:
        """Wait until something can be read (data, the end, or an error) without consuming it."""
        while not self._chunks and not self._eof and self._error is None:
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            await waiter

    async def readany(self) -> bytes:
        """Everything buffered now (waits when nothing is); ``b""`` at the end of the body."""
        if not self._chunks:
            await self.wait_readable()
            if not self._chunks:
                if self._error is not None:
                    raise self._error
                return b""
        chunks = self._chunks
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        self._chunks = []
        self._size = 0
        if self._paused:
            self._paused = False
            self._resume()
        return data

    async def next_chunk(self) -> bytes | None:
        """``readany``, except that it returns None when ``interrupt()`` woke it with nothing to read."""
        while not self._chunks and not self._eof and self._error is None:
            if self._interrupted:
                self._interrupted = False
                return None
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            await waiter
        self._interrupted = False
        return await self.readany()

    async def read(self) -> bytes:
        """The whole (rest of the) body."""
        parts: list[bytes] = []
        while True:
            data = await self.readany()
            if not data:
                return b"".join(parts) if len(parts) != 1 else parts[0]
            parts.append(data)

    async def iter_any(self) -> AsyncIterator[bytes]:
        """``async for data in body.iter_any()``: the chunks as they arrive."""
        while True:
            data = await self.readany()
            if not data:
                return
            yield data
