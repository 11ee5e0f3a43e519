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
    "log_url_problem",
    "open_event_log",
]


def log_url_problem(url: str) -> str | None:
    """What is wrong with an event-log URL (None when ``open_event_log`` accepts it); opens nothing."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        if not _sqlite_path(url):
            return f"sqlite event-log URL {url!r} names no file"
        return None
    if parts.scheme in _REDIS_SCHEMES:
        return None
    return f"unknown event-log URL {url!r}: expected sqlite:///PATH or redis://HOST:PORT/DB"


def open_event_log(url: str) -> EventLog:
    """``sqlite:///abs/path.db``, ``sqlite:relative.db``, ``sqlite://:memory:`` or a ``redis://`` URL.

    Nothing is opened until the first call, which raises ``EventLogUnavailable`` when the log cannot be reached
    or opened. Close it with ``await log.aclose()``. Raises ValueError for a URL ``log_url_problem`` refuses.
    """
    problem = log_url_problem(url)
    if problem is not None:
        raise ValueError(problem)
    if urlsplit(url).scheme == "sqlite":
        return SqliteEventLog(_sqlite_path(url))
    from tokenyard.pipeline.eventlog.redis_streams import RedisStreamsEventLog

    return RedisStreamsEventLog.from_url(url)


_REDIS_SCHEMES = ("redis", "rediss", "unix")


def _sqlite_path(url: str) -> str:
    path = url[len("sqlite:"):]
    return path[2:] if path.startswith("//") else path
