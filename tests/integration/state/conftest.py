"""One redis-server per test module, flushed between tests (much faster than one server per test)."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis

from tests.conftest import RedisServer, free_port
from tokenyard.state import SharedState, open_state


@pytest.fixture(scope="module")
def module_redis() -> Iterator[RedisServer]:
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


@pytest.fixture(params=["memory", "redis"])
async def state(request: pytest.FixtureRequest) -> AsyncIterator[SharedState]:
    """The contract suite's subject: each test runs once on MemoryState and once on RedisState."""
    url = "memory" if request.param == "memory" else request.getfixturevalue("flushed_redis").url
    opened = open_state(url, timeout_s=2.0)  # generous: this machine is shared and loaded
    try:
        yield opened
    finally:
        await opened.aclose()
