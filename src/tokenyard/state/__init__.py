"""Shared state for gateway replicas: ``open_state("memory")`` or ``open_state("redis://host:6379/0")``."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from tokenyard.state.base import (
    BucketTake,
    BudgetPeriod,
    BudgetResult,
    SharedState,
    StateHealth,
    StateUnavailable,
    Subscription,
    TakeAllResult,
    TakeResult,
    WindowResult,
)
from tokenyard.state.memory import MemoryState

__all__ = [
    "BucketTake",
    "BudgetPeriod",
    "BudgetResult",
    "MemoryState",
    "SharedState",
    "StateHealth",
    "StateUnavailable",
    "Subscription",
    "TakeAllResult",
    "TakeResult",
    "WindowResult",
    "open_state",
]


def open_state(url: str, *, prefix: str | None = None, timeout_s: float | None = None) -> SharedState:
    """Build the SharedState named by ``url``: ``memory``, or ``redis://`` / ``rediss://`` / ``unix://``.

    A Redis URL may carry ``?prefix=NAME`` (key namespace of this deployment, default ``tokenyard``) and
    ``?timeout_ms=N`` (bound on every call, default 250) and ``?cooldown_ms=N`` (after a failure, calls fail
    fast for that long, default 500); keyword arguments win over the URL. Nothing connects
    until the first call. Close it with ``await state.aclose()``.
    """
    if url == "memory":
        return MemoryState()
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ValueError(f"unknown state URL {url!r}: expected 'memory' or a redis:// URL")
    from tokenyard.state.redis import DEFAULT_COOLDOWN_S, DEFAULT_TIMEOUT_S, RedisState

    query = dict(parse_qsl(parts.query))
    url_prefix = query.pop("prefix", "tokenyard")
    url_timeout = float(query.pop("timeout_ms")) / 1000 if "timeout_ms" in query else DEFAULT_TIMEOUT_S
    cooldown = float(query.pop("cooldown_ms")) / 1000 if "cooldown_ms" in query else DEFAULT_COOLDOWN_S
    clean = urlunsplit(parts._replace(query=urlencode(query)))
    return RedisState.from_url(clean, prefix=prefix or url_prefix, timeout_s=timeout_s or url_timeout,
                               cooldown_s=cooldown)
