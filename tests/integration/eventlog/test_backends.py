"""Backend specifics: SQLite shared by several log objects (as by worker processes), Redis outages, ids."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.conftest import RedisServer, free_port
from tokenyard.pipeline.eventlog import EventLogUnavailable, SqliteEventLog, open_event_log
from tokenyard.pipeline.eventlog.ids import MAX_SEQ, lower_bound, parse_id, upper_bound


async def _drain(log: SqliteEventLog | object, consumer: str, seen: list[str]) -> None:
    assert isinstance(log, SqliteEventLog)
    idle_reads = 0
    while idle_reads < 3:
        entries = await log.read_group("s", "g", consumer, count=7, block_s=0.05)
        idle_reads = 0 if entries else idle_reads + 1
        seen.extend(e.id for e in entries)
        await log.ack("s", "g", [e.id for e in entries])


async def test_two_sqlite_logs_on_one_file_share_a_group_without_duplicates(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.db")
    producer, worker_a, worker_b = SqliteEventLog(path), SqliteEventLog(path), SqliteEventLog(path)
    try:
        await producer.create_group("s", "g")
        ids = [await producer.append("s", {"n": str(i)}) for i in range(200)]
        seen_a: list[str] = []
        seen_b: list[str] = []
        await asyncio.gather(_drain(worker_a, "a", seen_a), _drain(worker_b, "b", seen_b))
        assert sorted(seen_a + seen_b, key=parse_id) == ids  # every entry once, none twice
        assert (await producer.group_info("s", "g")).pending == 0
    finally:
        for log in (producer, worker_a, worker_b):
            await log.aclose()


async def test_sqlite_log_survives_reopening(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/durable.db"
    first = open_event_log(url)
    ids = [await first.append("s", {"n": str(i)}) for i in range(3)]
    await first.create_group("s", "g")
    await first.read_group("s", "g", "c", count=1)
    await first.aclose()
    second = open_event_log(url)
    try:
        assert [e.id for e in await second.read_range("s")] == ids
        assert [p.id for p in await second.pending("s", "g")] == ids[:1]
        assert parse_id(await second.append("s", {"n": "3"})) > parse_id(ids[-1])
    finally:
        await second.aclose()


@pytest.mark.redis
async def test_redis_log_raises_unavailable_then_recovers_after_restart(redis_server: RedisServer) -> None:
    log = open_event_log(redis_server.url)
    try:
        await log.create_group("s", "g")
        first = await log.append("s", {"n": "0"})
        redis_server.stop()
        with pytest.raises(EventLogUnavailable):
            await log.append("s", {"n": "1"})
        redis_server.start()  # the fixture's server keeps no data: the stream starts over
        await log.create_group("s", "g")
        second = await log.append("s", {"n": "1"})
        assert [e.id for e in await log.read_group("s", "g", "c")] == [second]
        assert first  # the pre-restart id was issued
    finally:
        await log.aclose()


async def test_unreachable_redis_is_unavailable_not_a_hang() -> None:
    log = open_event_log(f"redis://127.0.0.1:{free_port()}/0")
    try:
        with pytest.raises(EventLogUnavailable):
            await log.length("s")
    finally:
        await log.aclose()


def test_ids_and_bounds_parse_like_redis() -> None:
    assert parse_id("12-3") == (12, 3)
    assert parse_id("12") == (12, 0)
    assert lower_bound("-") == ((0, 0), True)
    assert lower_bound("(5-1") == ((5, 1), False)
    assert upper_bound("+") == ((MAX_SEQ, MAX_SEQ), True)
    assert upper_bound("7") == ((7, MAX_SEQ), True)
    for bad in ("x", "1-y", "-1-0", ""):
        with pytest.raises(ValueError, match="stream id"):
            parse_id(bad)


def test_open_event_log_rejects_unknown_urls() -> None:
    with pytest.raises(ValueError, match="sqlite"):
        open_event_log("kafka://x")
    with pytest.raises(ValueError, match="no file"):
        open_event_log("sqlite://")
