"""One redis-server per test module, flushed between tests (much faster than one server per test)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tokenyard.state import SharedState, open_state


@pytest.fixture(params=["memory", "redis"])
async def state(request: pytest.FixtureRequest) -> AsyncIterator[SharedState]:
    """The contract suite's subject: each test runs once on MemoryState and once on RedisState."""
    url = "memory" if request.param == "memory" else request.getfixturevalue("flushed_redis").url
    opened = open_state(url, timeout_s=2.0)  # generous: this machine is shared and loaded
    try:
        yield opened
    finally:
        await opened.aclose()
