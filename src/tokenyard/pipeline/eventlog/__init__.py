"""Event logs for streaming-first pipelines: ``open_event_log("sqlite:///path.db")`` or ``("redis://...")``."""

from __future__ import annotations

from urllib.parse import urlsplit

from tokenyard.pipeline.eventlog.base import (
    DEAD_SUFFIX,
    Entry,
    EventLog,
    EventLogUnavailable,
    GroupInfo,
    GroupNotFound,
    PendingEntry,
    dead_stream,
)
from tokenyard.pipeline.eventlog.sqlite import SqliteEventLog

__all__ = [
    "DEAD_SUFFIX",
    "Entry",
    "EventLog",
    "EventLogUnavailable",
    "GroupInfo",
    "GroupNotFound",
    "PendingEntry",
    "SqliteEventLog",
    "dead_stream",
    "open_event_log",
]


def open_event_log(url: str) -> EventLog:
    """``sqlite:///abs/path.db``, ``sqlite:relative.db``, ``sqlite://:memory:`` or a ``redis://`` URL.

    Nothing is opened until the first call. Close it with ``await log.aclose()``.
    """
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        path = url[len("sqlite:"):]
        path = path[2:] if path.startswith("//") else path
        if not path:
            raise ValueError(f"sqlite event-log URL {url!r} names no file")
        return SqliteEventLog(path)
    if parts.scheme in ("redis", "rediss", "unix"):
        from tokenyard.pipeline.eventlog.redis_streams import RedisStreamsEventLog

        return RedisStreamsEventLog.from_url(url)
    raise ValueError(f"unknown event-log URL {url!r}: expected sqlite:///PATH or redis://HOST:PORT/DB")
