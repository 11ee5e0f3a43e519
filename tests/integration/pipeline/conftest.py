from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import RedisServer


@pytest.fixture(params=["redis", "sqlite"])
def log_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same tests on Redis Streams (a real redis-server) and on the embedded SQLite log."""
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        return server.url
    return f"sqlite://{tmp_path / 'log.db'}"
