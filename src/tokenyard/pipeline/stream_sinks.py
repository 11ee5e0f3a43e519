"""Stream sinks, idempotent by event id: at most one result entry per event in the sink stream, whatever the
redeliveries. The ``EventLog`` seam has no conditional append, so each backend gets its own way here:

- Redis: one Lua script checks ``<stream>:dedupe`` (a hash event id -> entry id) and XADDs atomically, so
  workers on several machines can share the sink.
- Embedded SQLite: an exclusive ``flock`` on ``<db>.sink.lock`` serialises writers on the machine; under it the
  writer reads what others appended since it last looked (the stream itself is the index: nothing can diverge
  after a crash) and appends only an unseen event id.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec
import redis.asyncio as aioredis

from tokenyard.pipeline.eventlog import EventLog
from tokenyard.pipeline.sinks import Result

MAX_CONNECTIONS = 16
MAX_BATCH = 256  # results per backend call
# Check-and-append for every result of a batch, in one command: each result is still deduplicated on its own
# (a repeat inside the batch included). KEYS: the sink stream, its dedupe hash (event id -> entry id).
# ARGV[1]: JSON [[event_id, field, value, ...], ...] (one argument, not 30 protocol arguments per result).
_APPEND_ONCE_MANY = """
local verdicts = {}
for i, record in ipairs(cjson.decode(ARGV[1])) do
  if redis.call('HEXISTS', KEYS[2], record[1]) == 1 then
    verdicts[i] = 0
  else
    local id = redis.call('XADD', KEYS[1], '*', unpack(record, 2))
    redis.call('HSET', KEYS[2], record[1], id)
    verdicts[i] = 1
  end
end
return verdicts
"""
_encode = msgspec.json.Encoder().encode


class WriteBatcher:
    """Coalesces the writes of concurrently finishing events into one backend call per batch: a handler awaits
    its own result's verdict, so each event is still written (and deduplicated) before it is acked. One batch is
    in flight at a time; writes arriving meanwhile form the next one (the batch grows with the load)."""

    def __init__(self, write_many: Callable[[list[Result]], Awaitable[list[bool]]], max_batch: int = MAX_BATCH):
        self._write_many = write_many
        self._max_batch = max_batch
        self._queued: list[tuple[Result, asyncio.Future[bool]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def write(self, result: Result) -> bool:
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._queued.append((result, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="pipeline-sink-batch")
        return await future

    async def _flush(self) -> None:
        while self._queued:
            batch, self._queued = self._queued[:self._max_batch], self._queued[self._max_batch:]
            try:
                verdicts = await self._write_many([result for result, _ in batch])
            except Exception as exc:  # every writer of the batch sees the failure (its event stays pending)
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), verdict in zip(batch, verdicts, strict=True):
                if not future.done():  # a cancelled writer: its result is written, the redelivery dedupes
                    future.set_result(verdict)

    async def close(self) -> None:
        if self._flusher is not None and not self._flusher.done():
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher


class RedisStreamSink:
    def __init__(self, url: str, stream: str, outcomes: frozenset[str]) -> None:
        self.stream = stream
        self.outcomes = outcomes
        # A blocking pool: hundreds of in-flight events share a few connections instead of failing.
        pool = aioredis.BlockingConnectionPool.from_url(url, max_connections=MAX_CONNECTIONS, timeout=None)
        self._redis: aioredis.Redis = aioredis.Redis.from_pool(pool)
        self._script = self._redis.register_script(_APPEND_ONCE_MANY)
        self._batcher = WriteBatcher(self._write_many)

    async def write(self, result: Result) -> bool:
        return await self._batcher.write(result)

    async def _write_many(self, results: list[Result]) -> list[bool]:
        """One script call for the batch (atomic, and the results share one JSON argument); a restarted Redis
        that lost the script gets it loaded again by the registered script's NOSCRIPT fallback."""
        payload = _encode([[result.event_id, *result.flat_fields()] for result in results])
        replies = await self._script(keys=[self.stream, self.stream + ":dedupe"], args=[payload])
        return [bool(int(reply)) for reply in replies]

    async def close(self) -> None:
        await self._batcher.close()
        await self._redis.aclose()


class EmbeddedStreamSink:
    def __init__(self, log: EventLog, lock_path: Path, stream: str, outcomes: frozenset[str]) -> None:
        self.log = log
        self.stream = stream
        self.outcomes = outcomes
        self._lock_path = lock_path
        self._seen: set[str] = set()
        self._after = "0-0"
        self._batcher = WriteBatcher(self._write_many)

    async def write(self, result: Result) -> bool:
        return await self._batcher.write(result)

    async def _write_many(self, results: list[Result]) -> list[bool]:
        """Under the file lock: catch up with other writers, then append the unseen results in one transaction."""
        fd = self._try_lock() or await asyncio.to_thread(self._lock)
        try:
            while True:  # catch up with what other writers appended
                entries = await self.log.read_range(self.stream, f"({self._after}", "+", count=1000)
                for entry in entries:
                    self._seen.add(entry.fields.get("event_id", ""))
                    self._after = entry.id
                if len(entries) < 1000:
                    break
            verdicts: list[bool] = []
            fresh: dict[str, dict[str, str]] = {}  # event id -> fields; also dedupes a repeat inside the batch
            for result in results:
                new = result.event_id not in self._seen and result.event_id not in fresh
                if new:
                    fresh[result.event_id] = result.to_fields()
                verdicts.append(new)
            if fresh:
                ids = await self.log.append_many(self.stream, list(fresh.values()))
                # Marked seen only once appended (one transaction); after a failure the catch-up read above
                # finds whatever did land: the stream itself is the index.
                self._seen.update(fresh)
                self._after = ids[-1]
            return verdicts
        finally:
            fd.close()  # closing the file releases the flock

    def _lock(self) -> Any:
        fh = open(self._lock_path, "a+b")  # noqa: SIM115 - held across awaits, closed in _write_many()
        fcntl.flock(fh, fcntl.LOCK_EX)
        return fh

    def _try_lock(self) -> Any:
        """The lock without a thread hop when nobody holds it (one worker: always); None when it is taken."""
        fh = open(self._lock_path, "a+b")  # noqa: SIM115 - held across awaits, closed in _write_many()
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            return None
        return fh

    async def close(self) -> None:
        await self._batcher.close()


def sqlite_path(url: str) -> Path:
    path = url[len("sqlite:"):]
    return Path(path[2:] if path.startswith("//") else path)
