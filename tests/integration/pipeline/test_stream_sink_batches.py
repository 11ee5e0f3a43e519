"""Stream sinks write batches of results in one backend call each, still idempotent per event (a repeat inside
the batch included), and the embedded sink waits for the writers' file lock when another writer holds it."""

from __future__ import annotations

import asyncio
import fcntl
from pathlib import Path

import redis.asyncio as aioredis

from tests.conftest import RedisServer
from tokenyard.pipeline.eventlog import SqliteEventLog, open_event_log
from tokenyard.pipeline.sinks import Result
from tokenyard.pipeline.stream_sinks import EmbeddedStreamSink, RedisStreamSink

COMPLETED = frozenset({"completed"})


def _result(event_id: str, output: str = "ok") -> Result:
    return Result(event_id=event_id, status="completed", output=output, prompt_tokens=3, finished_ms=1.5)


async def test_redis_sink_batch_is_checked_per_result(redis_server: RedisServer) -> None:
    sink = RedisStreamSink(redis_server.url, "out", COMPLETED)
    log = open_event_log(redis_server.url)
    try:
        assert await sink.write(_result("a", "é / \"quoted\"\n"))
        # Written together: one batch, with a repeat of "b" and of the earlier "a".
        verdicts = await asyncio.gather(*(sink.write(_result(i)) for i in ("b", "a", "b", "c")))
        assert verdicts == [True, False, False, True]
        entries = await log.read_range("out")
        assert [e.fields["event_id"] for e in entries] == ["a", "b", "c"]
        assert entries[0].fields == _result("a", "é / \"quoted\"\n").to_fields()
        assert Result.from_fields(entries[1].fields) == _result("b")
    finally:
        await sink.close()
        await log.aclose()


async def test_redis_sink_reloads_its_script_after_a_flush(redis_server: RedisServer) -> None:
    sink = RedisStreamSink(redis_server.url, "out", COMPLETED)
    log = open_event_log(redis_server.url)
    try:
        assert await sink.write(_result("a"))
        admin = aioredis.Redis.from_url(redis_server.url)
        await admin.script_flush()
        await admin.aclose()
        assert await sink.write(_result("b")) and not await sink.write(_result("a"))
        assert await log.length("out") == 2
    finally:
        await sink.close()
        await log.aclose()


async def test_embedded_sink_waits_for_a_held_lock(tmp_path: Path) -> None:
    log = SqliteEventLog(str(tmp_path / "log.db"))
    lock_path = tmp_path / "log.db.sink.lock"
    sink = EmbeddedStreamSink(log, lock_path, "out", COMPLETED)
    try:
        assert await sink.write(_result("a"))  # the lock is free: taken without a thread
        with open(lock_path, "a+b") as other:  # another writer (its own open file) holds the lock
            fcntl.flock(other, fcntl.LOCK_EX)
            pending = asyncio.ensure_future(sink.write(_result("b")))
            await asyncio.sleep(0.3)
            assert not pending.done()
            fcntl.flock(other, fcntl.LOCK_UN)
            assert await asyncio.wait_for(pending, 10)
        assert not await sink.write(_result("b"))
        assert [e.fields["event_id"] for e in await log.read_range("out")] == ["a", "b"]
    finally:
        await sink.close()
        await log.aclose()
