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
import fcntl
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from tokenyard.pipeline.eventlog import EventLog
from tokenyard.pipeline.sinks import Result

MAX_CONNECTIONS = 16
_APPEND_ONCE = """
local found = redis.call('HGET', KEYS[2], ARGV[1])
if found then return 0 end
local id = redis.call('XADD', KEYS[1], '*', unpack(ARGV, 2))
redis.call('HSET', KEYS[2], ARGV[1], id)
return 1
"""


class RedisStreamSink:
    def __init__(self, url: str, stream: str, outcomes: frozenset[str]) -> None:
        self.stream = stream
        self.outcomes = outcomes
        # A blocking pool: hundreds of in-flight events share a few connections instead of failing.
        pool = aioredis.BlockingConnectionPool.from_url(url, max_connections=MAX_CONNECTIONS, timeout=None)
        self._redis: aioredis.Redis = aioredis.Redis.from_pool(pool)
        self._script = self._redis.register_script(_APPEND_ONCE)

    async def write(self, result: Result) -> bool:
        args: list[str] = [result.event_id]
        for k, v in result.to_fields().items():
            args += [k, v]
        return bool(int(await self._script(keys=[self.stream, self.stream + ":dedupe"], args=args)))

    async def close(self) -> None:
        await self._redis.aclose()


class EmbeddedStreamSink:
    def __init__(self, log: EventLog, lock_path: Path, stream: str, outcomes: frozenset[str]) -> None:
        self.log = log
        self.stream = stream
        self.outcomes = outcomes
        self._lock_path = lock_path
        self._seen: set[str] = set()
        self._after = "0-0"
        self._local = asyncio.Lock()

    async def write(self, result: Result) -> bool:
        async with self._local:
            fd = await asyncio.to_thread(self._lock)
            try:
                while True:  # catch up with what other writers appended
                    entries = await self.log.read_range(self.stream, f"({self._after}", "+", count=1000)
                    for entry in entries:
                        self._seen.add(entry.fields.get("event_id", ""))
                        self._after = entry.id
                    if len(entries) < 1000:
                        break
                if result.event_id in self._seen:
                    return False
                self._after = await self.log.append(self.stream, result.to_fields())
                self._seen.add(result.event_id)
                return True
            finally:
                fd.close()  # closing the file releases the flock

    def _lock(self) -> Any:
        fh = open(self._lock_path, "a+b")  # noqa: SIM115 - held across awaits, closed in write()
        fcntl.flock(fh, fcntl.LOCK_EX)
        return fh

    async def close(self) -> None:
        return None


def sqlite_path(url: str) -> Path:
    path = url[len("sqlite:"):]
    return Path(path[2:] if path.startswith("//") else path)
