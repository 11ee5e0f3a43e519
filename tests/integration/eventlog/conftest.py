"""The event-log contract subject: each test runs on SqliteEventLog (a WAL file) and on Redis Streams."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tokenyard.pipeline.eventlog import EventLog, open_event_log


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
