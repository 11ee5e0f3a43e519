"""The event-log contract subject: each test runs on SqliteEventLog (a WAL file) and on Redis Streams."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis

from tests.conftest import RedisServer, free_port
from tokenyard.pipeline.eventlog import EventLog, open_event_log


@pytest.fixture(scope="module")
def module_redis() -> Iterator[RedisServer]:
    """One redis-server per module, flushed before each test that uses it (much faster than one per test)."""
    with tempfile.TemporaryDirectory() as workdir:
        server = RedisServer(free_port(), Path(workdir))
        server.start()
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture
def flushed_redis(module_redis: RedisServer) -> RedisServer:
    with redis.Redis.from_url(module_redis.url) as client:
        client.flushall()
    return module_redis


@pytest.fixture(params=["sqlite", "redis"])
async def log(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[EventLog]:
    if request.param == "sqlite":
        opened = open_event_log(f"sqlite:///{tmp_path}/events.db")
    else:
        opened = open_event_log(request.getfixturevalue("flushed_redis").url)
    try:
        yield opened
    finally:
        await opened.aclose()
