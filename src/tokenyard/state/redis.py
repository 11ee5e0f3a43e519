"""SharedState on Redis: several gateway replicas share limits, leases, broadcast and caches.

Every read-modify-write is one Lua script (the ``*.lua`` files beside this module), so it is atomic across
replicas; scripts take one key each and read the server's clock (``TIME``), so replicas with skewed clocks agree.
All keys live under ``<prefix>:`` so several deployments can share one Redis.

Failure behaviour: each call is bounded by ``timeout_s``; a refused connection, a timeout or a server that is
still loading raises ``StateUnavailable`` and the caller applies its fail-open/closed policy. Connections are
re-established on the next call, so the object recovers by itself after Redis restarts. Subscriptions
resubscribe in the background; messages published while a subscriber is disconnected are lost (pub/sub is
at-most-once by design).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from importlib import resources
from typing import Any, TypeVar

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from tokenyard.state.base import (
    BucketTake,
    BudgetPeriod,
    BudgetResult,
    StateHealth,
    StateUnavailable,
    TakeAllResult,
    TakeResult,
    WindowResult,
)
from tokenyard.state.periods import period_end, period_id

T = TypeVar("T")

DEFAULT_TIMEOUT_S = 0.25
DEFAULT_COOLDOWN_S = 0.5
_UNAVAILABLE = (RedisConnectionError, RedisTimeoutError, OSError, TimeoutError)
_SCRIPTS = ("token_buckets_all", "bucket_adjust", "window_hit", "budget", "lease_acquire",
            "lease_renew", "lease_count", "list_append")
_SUBSCRIBER_QUEUE = 10_000


def _load_script(name: str) -> str:
    return resources.files("tokenyard.state").joinpath(f"{name}.lua").read_text(encoding="utf-8")


def _as_bytes(value: bytes | str) -> bytes:
    return value.encode() if isinstance(value, str) else value


def _ms(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))


async def bounded(awaitable: Awaitable[T], timeout_s: float, what: str) -> T:
    """Await ``awaitable`` for at most ``timeout_s``; any transport failure becomes ``StateUnavailable``."""
    try:
        async with asyncio.timeout(timeout_s):
            return await awaitable
    except _UNAVAILABLE as exc:
        raise StateUnavailable(f"redis unavailable ({what}): {exc!r}") from exc


def _close_pubsub(pubsub: PubSub) -> Awaitable[None]:
    """``pubsub.aclose()``, typed whatever redis-py is installed: newer releases (8.2) annotate it, older ones do
    not, so a bare call fails ``mypy --strict`` on old ones and an ignore comment fails it on new ones."""
    close: Callable[[], Awaitable[None]] = pubsub.aclose
    return close()


class RedisSubscription:
    """One channel on a dedicated connection; a background task reads it and resubscribes after outages."""

    def __init__(self, client: Redis, channel: str, timeout_s: float) -> None:
        self._client = client
        self._channel = channel
        self._timeout_s = timeout_s
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue(_SUBSCRIBER_QUEUE)
        self._pubsub: PubSub | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    async def start(self) -> None:
        """Subscribe before returning (raises ``StateUnavailable`` if Redis is down), then read in background."""
        await self._connect()
        self._task = asyncio.create_task(self._run(), name=f"tokenyard-subscription:{self._channel}")

    async def _connect(self) -> None:
        pubsub = self._client.pubsub(ignore_subscribe_messages=True)
        try:
            await bounded(pubsub.subscribe(self._channel), self._timeout_s, "subscribe")
        except BaseException:
            await _close_pubsub(pubsub)
            raise
        self._pubsub = pubsub

    async def _run(self) -> None:
        backoff = 0.05
        while not self._closed:
            try:
                if self._pubsub is None:
                    await self._connect()
                    backoff = 0.05
                assert self._pubsub is not None
                message = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            except (*_UNAVAILABLE, StateUnavailable):
                await self._drop_connection()
                await asyncio.sleep(backoff)  # Redis is down: retry with a capped backoff, never give up
                backoff = min(backoff * 2, 1.0)
                continue
            if message is not None and message.get("type") == "message":
                self._deliver(bytes(message["data"]))

    async def _drop_connection(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            with contextlib.suppress(*_UNAVAILABLE):
                await _close_pubsub(pubsub)

    def _deliver(self, message: bytes | None) -> None:
        if self._queue.full():  # a subscriber that stopped reading loses its oldest messages
            self._queue.get_nowait()
        self._queue.put_nowait(message)

    def __aiter__(self) -> RedisSubscription:
        return self

    async def __anext__(self) -> bytes:
        if self._closed:
            raise StopAsyncIteration
        message = await self._queue.get()
        if message is None:
            raise StopAsyncIteration
        return message

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._drop_connection()
        self._deliver(None)


class RedisState:
    """SharedState on one Redis. Build with ``open_state("redis://...")`` or directly from a client."""

    def __init__(self, client: Redis, prefix: str = "tokenyard", timeout_s: float = DEFAULT_TIMEOUT_S,
                 max_value_bytes: int = 8 * 1024 * 1024, cooldown_s: float = DEFAULT_COOLDOWN_S) -> None:
        self._client = client
        self._prefix = prefix
        self._timeout_s = timeout_s
        self._max_value_bytes = max_value_bytes
        self._cooldown_s = cooldown_s
        self._down_until = 0.0  # monotonic; while in the future, calls fail fast without touching Redis
        self._scripts: dict[str, AsyncScript] = {
            name: client.register_script(_load_script(name)) for name in _SCRIPTS
        }
        self._subscriptions: set[RedisSubscription] = set()

    @classmethod
    def from_url(cls, url: str, prefix: str = "tokenyard", timeout_s: float = DEFAULT_TIMEOUT_S,
                 max_connections: int = 64, cooldown_s: float = DEFAULT_COOLDOWN_S) -> RedisState:
        # A blocking pool: a burst of calls waits for a connection (bounded by timeout_s) instead of failing.
        # One quick retry lets a pooled connection that Redis closed (restart) reconnect inside the same call.
        pool = BlockingConnectionPool.from_url(
            url, max_connections=max_connections, timeout=None, socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s, retry=Retry(NoBackoff(), 1))
        return cls(Redis.from_pool(pool), prefix=prefix, timeout_s=timeout_s, cooldown_s=cooldown_s)

    def _key(self, kind: str, key: str) -> str:
        return f"{self._prefix}:{kind}:{key}"

    async def _run(self, awaitable: Awaitable[T], what: str, probe: bool = False) -> T:
        """Bounded call with a breaker: after a failure, calls fail fast for ``cooldown_s``, so a blackholed
        Redis costs each request nothing instead of a full timeout; the first call after the cool-down (or a
        ``health()`` probe) tries Redis again."""
        if not probe and time.monotonic() < self._down_until:
            close = getattr(awaitable, "close", None)
            if close is not None:
                close()  # never started: close it so it is not reported as never awaited
            raise StateUnavailable(f"redis unavailable ({what}): failed within the last {self._cooldown_s}s")
        try:
            result = await bounded(awaitable, self._timeout_s, what)
        except StateUnavailable:
            self._down_until = time.monotonic() + self._cooldown_s
            raise
        self._down_until = 0.0
        return result

    async def _script(self, name: str, key: str, *args: Any) -> Any:
        return await self._run(self._scripts[name](keys=[key], args=list(args)), name)

    # -- rate limiting --------------------------------------------------------------------------------------
    async def take(
        self, key: str, cost: float, rate_per_s: float, burst: float, now: float | None = None
    ) -> TakeResult:
        # One bucket is an all-or-nothing take of one: one script holds the refill and reconciliation arithmetic.
        return (await self.take_all([BucketTake(key, cost, rate_per_s, burst)], now)).buckets[0]

    async def take_all(self, takes: Sequence[BucketTake], now: float | None = None) -> TakeAllResult:
        if len({t.key for t in takes}) != len(takes):
            raise ValueError("take_all needs distinct bucket keys")
        if not takes:
            return TakeAllResult(True, [])
        args: list[str] = ["" if now is None else repr(float(now))]
        for take in takes:
            args += [repr(float(take.cost)), repr(float(take.rate_per_s)), repr(float(take.burst))]
        keys = [self._key("tb", take.key) for take in takes]
        allowed, rows = await self._run(self._scripts["token_buckets_all"](keys=keys, args=args), "take_all")
        buckets = [TakeResult(bool(ok), float(level), math.inf if float(retry) < 0 else float(retry))
                   for ok, level, retry in rows]
        return TakeAllResult(bool(allowed), buckets)

    async def adjust(self, key: str, delta: float) -> None:
        await self._script("bucket_adjust", self._key("tb", key), repr(float(delta)))

    async def window_hit(
        self, key: str, limit: int, window_s: float, cost: int = 1, now: float | None = None
    ) -> WindowResult:
        allowed, hits, reset_after = await self._script(
            "window_hit", self._key("win", key), int(cost), int(limit), repr(float(window_s)),
            "" if now is None else repr(float(now)))
        return WindowResult(bool(allowed), int(hits), float(reset_after))

    async def consume_budget(
        self, key: str, tokens: int, limit: int, period: BudgetPeriod, now: float | None = None,
        force: bool = False,
    ) -> BudgetResult:
        moment = time.time() if now is None else now
        slot = self._key("budget", f"{key}:{period_id(period, moment)}")
        ttl_ms = _ms(period_end(period, moment) - moment + 86400.0)  # kept a day past the end, for reports
        allowed, used = await self._script("budget", slot, int(tokens), int(limit), "1" if force else "0", ttl_ms)
        return BudgetResult(bool(allowed), int(used), max(0, limit - int(used)))

    # -- leases ---------------------------------------------------------------------------------------------
    async def acquire_lease(self, resource: str, holder: str, limit: int, ttl_s: float) -> bool:
        return bool(await self._script("lease_acquire", self._key("lease", resource), holder, int(limit), _ms(ttl_s)))

    async def renew_lease(self, resource: str, holder: str, ttl_s: float) -> bool:
        return bool(await self._script("lease_renew", self._key("lease", resource), holder, _ms(ttl_s)))

    async def release_lease(self, resource: str, holder: str) -> bool:
        return bool(await self._run(self._client.zrem(self._key("lease", resource), holder), "release_lease"))

    async def lease_count(self, resource: str) -> int:
        return int(await self._script("lease_count", self._key("lease", resource)))

    # -- broadcast ------------------------------------------------------------------------------------------
    async def publish(self, channel: str, message: bytes) -> None:
        await self._run(self._client.publish(self._key("ch", channel), message), "publish")

    async def subscribe(self, channel: str) -> RedisSubscription:
        subscription = RedisSubscription(self._client, self._key("ch", channel), self._timeout_s)
        await subscription.start()
        self._subscriptions.add(subscription)
        return subscription

    # -- KV -------------------------------------------------------------------------------------------------
    async def get(self, key: str) -> bytes | None:
        value = await self._run(self._client.get(self._key("kv", key)), "get")
        return None if value is None else _as_bytes(value)

    async def set(self, key: str, value: bytes, ttl_s: float | None = None, only_if_absent: bool = False) -> bool:
        self._check_size(value)
        px = None if ttl_s is None else _ms(ttl_s)
        written = await self._run(self._client.set(self._key("kv", key), value, px=px, nx=only_if_absent), "set")
        return bool(written)

    async def delete(self, key: str) -> bool:
        return bool(await self._run(self._client.delete(self._key("kv", key)), "delete"))

    async def append(self, key: str, value: bytes, max_len: int, ttl_s: float | None = None) -> int:
        self._check_size(value)
        ttl = "" if ttl_s is None else _ms(ttl_s)
        return int(await self._script("list_append", self._key("kv", key), value, int(max_len), ttl))

    async def list_range(self, key: str, start: int = 0, end: int = -1) -> list[bytes]:
        items = await self._run(self._client.lrange(self._key("kv", key), start, end), "list_range")
        return [_as_bytes(item) for item in items]

    def _check_size(self, value: bytes) -> None:
        if len(value) > self._max_value_bytes:
            raise ValueError(f"value of {len(value)} bytes exceeds the limit of {self._max_value_bytes}")

    # -- lifecycle ------------------------------------------------------------------------------------------
    async def health(self) -> StateHealth:
        started = time.perf_counter()
        try:
            await self._run(self._client.ping(), "ping", probe=True)
        except StateUnavailable as exc:
            return StateHealth(False, "redis", str(exc), time.perf_counter() - started)
        return StateHealth(True, "redis", "ping ok", time.perf_counter() - started)

    async def aclose(self) -> None:
        for subscription in list(self._subscriptions):
            await subscription.aclose()
        self._subscriptions.clear()
        await self._client.aclose()
