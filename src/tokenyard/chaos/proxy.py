"""A TCP chaos proxy on asyncio streams: forwards loopback connections to a target and injects faults.

Per connection there are two pumps (client -> server "up", server -> client "down"), each made of one reader
task and one writer task joined by a bounded queue of ``(deliver_at, chunk)``: the reader stamps every chunk
with its scheduled delivery time as it arrives (latency +/- jitter, never before the previous chunk), the writer
waits for that time and then writes, applying the bandwidth cap and slicing. So delay costs no task per byte or
per chunk, byte order is kept, and the bounded queue gives back-pressure to the sender.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
from dataclasses import asdict, dataclass
from typing import Any, Literal

from tokenyard.chaos.faults import ConnectionPlan, DirectionPlan, Faults, plan_connection
from tokenyard.chaos.shaping import DelayLine, TokenBucket, default_burst, segments, split_at_limit

READ_SIZE = 16 * 1024
QUEUE_CHUNKS = 32
"""At most this many chunks wait per direction (512 KiB with ``READ_SIZE``) before the reader stops reading."""

CLOSE_TIMEOUT_S = 5.0

Ending = Literal["reset", "close"]


@dataclass
class ProxyStats:
    """Counters served by ``GET /stats``."""

    connections_total: int = 0
    connections_active: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
    resets: int = 0
    blackholed: int = 0
    closed_after_bytes: int = 0
    target_connect_errors: int = 0

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def _set_reset_on_close(writer: asyncio.StreamWriter) -> None:
    """SO_LINGER 0: closing the socket then sends RST instead of FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def _set_nodelay(writer: asyncio.StreamWriter) -> None:
    # Small segments (slicing) must leave as separate TCP segments, not be coalesced by Nagle.
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _Connection:
    """One proxied connection: two pumps and the decision how it ends."""

    def __init__(
        self,
        client: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        server: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        plan: ConnectionPlan,
        stats: ProxyStats,
    ) -> None:
        self._client = client
        self._server = server
        self._plan = plan
        self._stats = stats
        self._ending: Ending | None = None
        self._ended = asyncio.Event()

    def end(self, how: Ending) -> None:
        """Stop both directions; the first caller decides between RST and FIN."""
        if self._ending is None:
            self._ending = how
        self._ended.set()

    async def run(self) -> None:
        up = _Pump("up", self._client[0], self._server[1], self._plan.up, self, self._stats)
        down = _Pump("down", self._server[0], self._client[1], self._plan.down, self, self._stats)
        pumps: asyncio.Future[Any] = asyncio.gather(up.run(), down.run())
        ended: asyncio.Future[Any] = asyncio.create_task(self._ended.wait())
        try:
            await asyncio.wait({pumps, ended}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            pumps.cancel()
            ended.cancel()
            await asyncio.gather(pumps, ended, return_exceptions=True)
            await self._close_both()

    async def _close_both(self) -> None:
        writers = (self._client[1], self._server[1])
        if self._ending == "reset":
            for writer in writers:
                _set_reset_on_close(writer)
                writer.transport.abort()
            return
        for writer in writers:
            writer.close()
        try:
            # A peer that stopped reading would keep a graceful close (flush, then FIN) waiting forever.
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                for writer in writers:
                    with contextlib.suppress(OSError):
                        await writer.wait_closed()
        except TimeoutError:
            for writer in writers:
                writer.transport.abort()


class _Pump:
    """One direction: a reader task stamping chunks with delivery times, and the writer loop."""

    def __init__(
        self,
        direction: Literal["up", "down"],
        source: asyncio.StreamReader,
        sink: asyncio.StreamWriter,
        plan: DirectionPlan,
        conn: _Connection,
        stats: ProxyStats,
    ) -> None:
        self._direction = direction
        self._source = source
        self._sink = sink
        self._plan = plan
        self._conn = conn
        self._stats = stats
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(QUEUE_CHUNKS)
        self._delay = (
            DelayLine(plan.latency_s, plan.jitter_s, random.Random(plan.jitter_seed))
            if plan.latency_s or plan.jitter_s
            else None
        )
        self._bucket = (
            TokenBucket(plan.bytes_per_s, default_burst(plan.bytes_per_s), self._loop.time())
            if plan.bytes_per_s
            else None
        )

    def _count(self, nbytes: int) -> None:
        if self._direction == "up":
            self._stats.bytes_up += nbytes
        else:
            self._stats.bytes_down += nbytes

    async def run(self) -> None:
        if self._plan.blackhole:
            await self._swallow()
            return
        reader = asyncio.create_task(self._read())
        try:
            await self._write()
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)

    async def _swallow(self) -> None:
        """Blackhole: read and discard; when the sender gives up (EOF), drop the whole connection."""
        self._stats.blackholed += 1
        try:
            while await self._source.read(READ_SIZE):
                pass
        except OSError:
            pass
        self._conn.end("close")

    async def _read(self) -> None:
        try:
            while True:
                data = await self._source.read(READ_SIZE)
                now = self._loop.time()
                deliver_at = self._delay.schedule(now) if self._delay else now
                await self._queue.put((deliver_at, data))
                if not data:
                    return
        except OSError:
            # The peer reset its side: pass the reset on to the other peer.
            self._conn.end("reset")

    def _limit(self) -> tuple[int | None, Ending]:
        reset_after, close_after = self._plan.reset_after, self._plan.close_after
        if reset_after is not None and (close_after is None or reset_after <= close_after):
            return reset_after, "reset"
        return close_after, "close"

    async def _write(self) -> None:
        limit, action = self._limit()
        sent = 0
        step = self._plan.slice_bytes or (int(self._bucket.burst) if self._bucket else 0)
        while True:
            deliver_at, data = await self._queue.get()
            wait = deliver_at - self._loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:
                if self._sink.can_write_eof():
                    with contextlib.suppress(OSError):
                        self._sink.write_eof()
                return
            data, reached = split_at_limit(data, sent, limit)
            try:
                for piece in segments(data, step):
                    if self._bucket is not None:
                        pause = self._bucket.reserve(len(piece), self._loop.time())
                        if pause > 0:
                            await asyncio.sleep(pause)
                    self._sink.write(piece)
                    await self._sink.drain()
                    sent += len(piece)
                    self._count(len(piece))
                    if self._plan.slice_bytes and self._plan.slice_delay_s:
                        await asyncio.sleep(self._plan.slice_delay_s)
            except OSError:
                self._conn.end("reset")
                return
            if reached:
                if action == "reset":
                    self._stats.resets += 1
                else:
                    self._stats.closed_after_bytes += 1
                self._conn.end(action)
                return


class ChaosProxy:
    """Listens on ``listen_host:listen_port`` and forwards every connection to ``target`` with faults.

    Faults can be replaced at any time with :meth:`set_faults`; they apply to connections accepted afterwards.
    """

    def __init__(
        self,
        target_host: str,
        target_port: int,
        faults: Faults | None = None,
        *,
        seed: int = 0,
        listen_host: str = "127.0.0.1",
        listen_port: int = 0,
    ) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.listen_host = listen_host
        self._listen_port = listen_port
        self._faults = faults or Faults()
        self._rng = random.Random(seed)
        self.stats = ProxyStats()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def faults(self) -> Faults:
        return self._faults

    def set_faults(self, faults: Faults) -> None:
        self._faults = faults

    def reset_stats(self) -> None:
        """Zero the counters in place (open connections keep counting), except the active gauge."""
        active = self.stats.connections_active
        for name in self.stats.to_dict():
            setattr(self.stats, name, 0)
        self.stats.connections_active = active

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("proxy not started")
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, self.listen_host, self._listen_port)

    async def close(self) -> None:
        """Stop listening and drop every open connection."""
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> ChaosProxy:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        stats = self.stats
        stats.connections_total += 1
        stats.connections_active += 1
        plan = plan_connection(self._faults, self._rng)
        server: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        try:
            try:
                server = await asyncio.open_connection(self.target_host, self.target_port)
            except OSError:
                stats.target_connect_errors += 1
                _set_reset_on_close(writer)
                writer.transport.abort()
                return
            _set_nodelay(writer)
            _set_nodelay(server[1])
            await _Connection((reader, writer), server, plan, stats).run()
        except asyncio.CancelledError:
            # Only close() cancels connections; ending quietly keeps asyncio from logging the cancellation.
            pass
        finally:
            # Cancelled before the connection took charge of them (close() while dialing), or while it was
            # closing them: whatever is still open is aborted, never left to the garbage collector.
            for open_writer in (writer, server[1] if server is not None else None):
                if open_writer is not None and not open_writer.is_closing():
                    open_writer.transport.abort()
            stats.connections_active -= 1
            self._tasks.discard(task)
