"""In-process SharedState: the embedded default for a single gateway process.

Same semantics as the Redis implementation (the shared contract suite runs on both). Everything runs on the
event loop without awaiting in the middle of an update, so each operation is atomic within the process.
Memory is bounded: KV values and lists share ``max_bytes`` with least-recently-used eviction, and expired
buckets, windows and leases are swept periodically.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tokenyard.state.base import (
    BucketTake,
    BudgetPeriod,
    BudgetResult,
    StateHealth,
    TakeAllResult,
    TakeResult,
    WindowResult,
)
from tokenyard.state.periods import period_end, period_id

_SWEEP_EVERY = 4096  # operations between sweeps of expired counters and leases
_SUBSCRIBER_QUEUE = 10_000  # messages buffered per subscriber before the oldest are dropped


@dataclass
class _Bucket:
    tokens: float
    ts: float
    adj: float = 0.0
    expires: float = math.inf


@dataclass
class _Stored:
    value: bytes | deque[bytes]
    expires: float
    size: int


def _check_distinct(takes: Sequence[BucketTake]) -> None:
    if len({t.key for t in takes}) != len(takes):
        raise ValueError("take_all needs distinct bucket keys")


class _MemorySubscription:
    """A bounded per-subscriber queue; a subscriber that stops reading loses its oldest messages, never blocks."""

    def __init__(self, channel: str, owner: MemoryState) -> None:
        self.channel = channel
        self._owner = owner
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue(_SUBSCRIBER_QUEUE)
        self._closed = False

    def deliver(self, message: bytes | None) -> None:
        if self._queue.full():
            self._queue.get_nowait()
        self._queue.put_nowait(message)

    def __aiter__(self) -> _MemorySubscription:
        return self

    async def __anext__(self) -> bytes:
        if self._closed:
            raise StopAsyncIteration
        message = await self._queue.get()
        if message is None:  # woken by aclose
            raise StopAsyncIteration
        return message

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            self._owner._unsubscribe(self)
            self.deliver(None)


class MemoryState:
    """SharedState for one process. ``clock`` returns epoch seconds (injectable for tests)."""

    def __init__(self, max_bytes: int = 64 * 1024 * 1024, clock: Callable[[], float] = time.time,
                 max_value_bytes: int = 8 * 1024 * 1024) -> None:
        self._clock = clock
        self._max_bytes = max_bytes
        self._max_value_bytes = max_value_bytes
        self._bytes = 0
        self._buckets: dict[str, _Bucket] = {}
        self._windows: dict[str, tuple[int, int, float]] = {}  # key -> (window index, count, expires)
        self._budgets: dict[str, tuple[int, float]] = {}  # key:period id -> (used, expires)
        self._leases: dict[str, dict[str, float]] = {}  # resource -> holder -> expiry
        self._kv: OrderedDict[str, _Stored] = OrderedDict()
        self._subscribers: dict[str, set[_MemorySubscription]] = {}
        self._ops = 0

    # -- rate limiting --------------------------------------------------------------------------------------
    async def take(
        self, key: str, cost: float, rate_per_s: float, burst: float, now: float | None = None
    ) -> TakeResult:
        result = await self.take_all([BucketTake(key, cost, rate_per_s, burst)], now)
        return result.buckets[0]

    async def take_all(self, takes: Sequence[BucketTake], now: float | None = None) -> TakeAllResult:
        _check_distinct(takes)
        now = self._now(now)
        buckets = [self._refilled(t.key, t.rate_per_s, t.burst, now) for t in takes]
        allowed = all(b.tokens >= t.cost for b, t in zip(buckets, takes, strict=True))
        results = []
        for bucket, take in zip(buckets, takes, strict=True):
            enough = bucket.tokens >= take.cost
            if enough:
                retry = 0.0
            elif take.rate_per_s > 0 and take.cost <= take.burst:
                retry = (take.cost - bucket.tokens) / take.rate_per_s
            else:
                retry = math.inf
            if allowed:
                bucket.tokens -= take.cost
            rate, burst = take.rate_per_s, take.burst
            bucket.expires = now + ((burst - bucket.tokens) / rate + 1.0 if rate > 0 else 86400.0)
            results.append(TakeResult(enough, bucket.tokens, retry))
        return TakeAllResult(allowed, results)

    def _refilled(self, key: str, rate_per_s: float, burst: float, now: float) -> _Bucket:
        """The bucket refilled to ``now`` (capped at ``burst``) with pending reconciliation applied."""
        bucket = self._buckets.get(key)
        if bucket is None or (bucket.expires <= now and bucket.adj == 0):
            bucket = _Bucket(tokens=burst, ts=now)
            self._buckets[key] = bucket
        if now > bucket.ts:
            bucket.tokens = min(burst, bucket.tokens + (now - bucket.ts) * rate_per_s)
            bucket.ts = now
        bucket.tokens = min(burst, bucket.tokens + bucket.adj)
        bucket.adj = 0.0
        return bucket

    async def adjust(self, key: str, delta: float) -> None:
        self._tick()
        bucket = self._buckets.get(key)
        if bucket is None:
            # Unknown bucket: it is full, so remember the delta and apply it on the first take.
            bucket = _Bucket(tokens=math.inf, ts=self._clock())
            self._buckets[key] = bucket
        bucket.adj += delta
        bucket.expires = max(bucket.expires if bucket.expires != math.inf else 0.0, self._clock() + 3600.0)

    async def window_hit(
        self, key: str, limit: int, window_s: float, cost: int = 1, now: float | None = None
    ) -> WindowResult:
        now = self._now(now)
        index = math.floor(now / window_s)
        current, count, _ = self._windows.get(key, (index, 0, 0.0))
        if current != index:
            count = 0
        allowed = count + cost <= limit
        if allowed:
            count += cost
        self._windows[key] = (index, count, (index + 1) * window_s + 1.0)
        return WindowResult(allowed, count, (index + 1) * window_s - now)

    async def consume_budget(
        self, key: str, tokens: int, limit: int, period: BudgetPeriod, now: float | None = None,
        force: bool = False,
    ) -> BudgetResult:
        now = self._now(now)
        slot = f"{key}:{period_id(period, now)}"
        used, expires = self._budgets.get(slot, (0, period_end(period, now) + 86400.0))
        allowed = force or used + tokens <= limit
        if allowed:
            used += tokens
            self._budgets[slot] = (used, expires)
        return BudgetResult(allowed, used, max(0, limit - used))

    # -- leases ---------------------------------------------------------------------------------------------
    async def acquire_lease(self, resource: str, holder: str, limit: int, ttl_s: float) -> bool:
        now = self._now(None)
        holders = self._live_holders(resource, now)
        if holder in holders or len(holders) < limit:
            holders[holder] = now + ttl_s
            return True
        return False

    async def renew_lease(self, resource: str, holder: str, ttl_s: float) -> bool:
        now = self._now(None)
        holders = self._live_holders(resource, now)
        if holder not in holders:
            return False
        holders[holder] = now + ttl_s
        return True

    async def release_lease(self, resource: str, holder: str) -> bool:
        holders = self._live_holders(resource, self._now(None))
        return holders.pop(holder, None) is not None

    async def lease_count(self, resource: str) -> int:
        return len(self._live_holders(resource, self._now(None)))

    def _live_holders(self, resource: str, now: float) -> dict[str, float]:
        holders = self._leases.setdefault(resource, {})
        for dead in [h for h, expiry in holders.items() if expiry <= now]:
            del holders[dead]
        return holders

    # -- broadcast ------------------------------------------------------------------------------------------
    async def publish(self, channel: str, message: bytes) -> None:
        for subscriber in list(self._subscribers.get(channel, ())):
            subscriber.deliver(bytes(message))

    async def subscribe(self, channel: str) -> _MemorySubscription:
        subscription = _MemorySubscription(channel, self)
        self._subscribers.setdefault(channel, set()).add(subscription)
        return subscription

    def _unsubscribe(self, subscription: _MemorySubscription) -> None:
        subscribers = self._subscribers.get(subscription.channel)
        if subscribers is not None:
            subscribers.discard(subscription)
            if not subscribers:
                del self._subscribers[subscription.channel]

    # -- KV -------------------------------------------------------------------------------------------------
    async def get(self, key: str) -> bytes | None:
        stored = self._lookup(key)
        return stored.value if stored is not None and isinstance(stored.value, bytes) else None

    async def set(self, key: str, value: bytes, ttl_s: float | None = None, only_if_absent: bool = False) -> bool:
        self._check_size(value)
        if only_if_absent and self._lookup(key) is not None:
            return False
        self._store(key, _Stored(bytes(value), self._expiry(ttl_s), len(value)))
        return True

    async def delete(self, key: str) -> bool:
        stored = self._kv.pop(key, None)
        if stored is None:
            return False
        self._bytes -= stored.size
        return stored.expires > self._clock()

    async def append(self, key: str, value: bytes, max_len: int, ttl_s: float | None = None) -> int:
        self._check_size(value)
        stored = self._lookup(key)
        items: deque[bytes] = stored.value if stored is not None and isinstance(stored.value, deque) else deque()
        items.append(bytes(value))
        while len(items) > max_len:
            items.popleft()
        expires = self._expiry(ttl_s) if ttl_s is not None or stored is None else stored.expires
        self._store(key, _Stored(items, expires, sum(len(item) for item in items)))
        return len(items)

    async def list_range(self, key: str, start: int = 0, end: int = -1) -> list[bytes]:
        stored = self._lookup(key)
        if stored is None or not isinstance(stored.value, deque):
            return []
        items = list(stored.value)
        n = len(items)
        first = max(0, start + n if start < 0 else start)
        last = end + n if end < 0 else min(end, n - 1)
        return items[first:last + 1] if first <= last else []

    def _check_size(self, value: bytes) -> None:
        if len(value) > self._max_value_bytes:
            raise ValueError(f"value of {len(value)} bytes exceeds the limit of {self._max_value_bytes}")

    def _lookup(self, key: str) -> _Stored | None:
        self._tick()
        stored = self._kv.get(key)
        if stored is None:
            return None
        if stored.expires <= self._clock():
            self._bytes -= stored.size
            del self._kv[key]
            return None
        self._kv.move_to_end(key)
        return stored

    def _store(self, key: str, stored: _Stored) -> None:
        old = self._kv.pop(key, None)
        if old is not None:
            self._bytes -= old.size
        self._kv[key] = stored
        self._bytes += stored.size
        while self._bytes > self._max_bytes and len(self._kv) > 1:
            _, evicted = self._kv.popitem(last=False)
            self._bytes -= evicted.size

    def _expiry(self, ttl_s: float | None) -> float:
        return math.inf if ttl_s is None else self._clock() + ttl_s

    # -- housekeeping ---------------------------------------------------------------------------------------
    def _now(self, now: float | None) -> float:
        self._tick()
        return self._clock() if now is None else now

    def _tick(self) -> None:
        self._ops += 1
        if self._ops % _SWEEP_EVERY == 0:
            self._sweep(self._clock())

    def _sweep(self, now: float) -> None:
        """Drop state that has expired so a long-running process does not grow without bound."""
        for key in [k for k, b in self._buckets.items() if b.expires <= now]:
            del self._buckets[key]
        for key in [k for k, (_, _, expires) in self._windows.items() if expires <= now]:
            del self._windows[key]
        for key in [k for k, (_, expires) in self._budgets.items() if expires <= now]:
            del self._budgets[key]
        for resource in list(self._leases):
            if not self._live_holders(resource, now):
                del self._leases[resource]
        for key in [k for k, s in self._kv.items() if s.expires <= now]:
            self._bytes -= self._kv.pop(key).size

    async def health(self) -> StateHealth:
        return StateHealth(True, "memory", f"{len(self._kv)} keys, {self._bytes} bytes", 0.0)

    async def aclose(self) -> None:
        for subscribers in list(self._subscribers.values()):
            for subscription in list(subscribers):
                await subscription.aclose()
