"""The SharedState seam: what every replica of the gateway shares (limits, leases, broadcast, caches).

One Protocol, two implementations: ``MemoryState`` (one process, the embedded default) and ``RedisState``
(several replicas on one Redis). Both pass the same contract suite, so callers never branch on the backend.

Failure model: a backend that cannot answer within its short timeout raises ``StateUnavailable``; the caller
applies its configured fail-open or fail-closed policy. Nothing here retries for longer than that timeout.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Literal, NamedTuple, Protocol, runtime_checkable

BudgetPeriod = Literal["day", "month"]


class StateUnavailable(Exception):
    """The shared-state backend did not answer in time (down, partitioned, overloaded)."""


class TakeResult(NamedTuple):
    """Outcome of a token-bucket take: unpacks as ``(allowed, remaining, retry_after_s)``.

    ``remaining`` is the bucket level after the take (may be negative after debits); ``retry_after_s`` is 0 when
    allowed, the time until ``cost`` tokens are available otherwise, ``math.inf`` when ``cost`` exceeds ``burst``.
    """

    allowed: bool
    remaining: float
    retry_after_s: float


class BucketTake(NamedTuple):
    """One bucket of an all-or-nothing ``take_all``."""

    key: str
    cost: float
    rate_per_s: float
    burst: float


class TakeAllResult(NamedTuple):
    """``allowed``: every bucket had enough and all were charged; otherwise none was.

    ``buckets[i]`` is bucket i's own view: whether it alone had enough, its level afterwards and when it would.
    """

    allowed: bool
    buckets: list[TakeResult]

    @property
    def retry_after_s(self) -> float:
        return max((b.retry_after_s for b in self.buckets), default=0.0)


class WindowResult(NamedTuple):
    """Outcome of a fixed-window counter hit: ``hits`` is the window's total after this hit."""

    allowed: bool
    hits: int
    reset_after_s: float


class BudgetResult(NamedTuple):
    """Outcome of a token-budget consumption in the current UTC day or month."""

    allowed: bool
    used: int
    remaining: int


class StateHealth(NamedTuple):
    ok: bool
    backend: str
    detail: str
    latency_s: float


@runtime_checkable
class Subscription(Protocol):
    """Messages published on one channel after ``subscribe`` returned; end it with ``aclose``."""

    def __aiter__(self) -> AsyncIterator[bytes]: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class SharedState(Protocol):
    """State shared by all replicas. Every method is atomic with respect to every other replica."""

    # -- rate limiting --------------------------------------------------------------------------------------
    async def take(
        self, key: str, cost: float, rate_per_s: float, burst: float, now: float | None = None
    ) -> TakeResult:
        """Token bucket: refill at ``rate_per_s`` up to ``burst``, then take ``cost`` if the level allows.

        ``now`` (epoch seconds) is for deterministic tests; by default the backend's clock is used (Redis: the
        server's, so replicas with skewed clocks agree). A refused take consumes nothing.
        """
        ...

    async def take_all(self, takes: Sequence[BucketTake], now: float | None = None) -> TakeAllResult:
        """Take from several distinct buckets atomically, all or nothing, in one round trip.

        For limits on several scopes at once (key, tenant, class; requests and tokens): a refusal by one bucket
        charges none. Keys must be distinct (``ValueError`` otherwise).
        """
        ...

    async def adjust(self, key: str, delta: float) -> None:
        """Reconcile a bucket after the fact: ``delta`` > 0 refunds, < 0 debits (the level may go negative).

        Applied at the next ``take`` after refill; refunds never lift the level above ``burst``.
        """
        ...

    async def window_hit(
        self, key: str, limit: int, window_s: float, cost: int = 1, now: float | None = None
    ) -> WindowResult:
        """Fixed-window counter (windows aligned to the epoch): admit if ``hits + cost <= limit``.

        A refused hit does not count. At most ``limit`` is admitted per window, across all replicas.
        """
        ...

    async def consume_budget(
        self, key: str, tokens: int, limit: int, period: BudgetPeriod, now: float | None = None,
        force: bool = False,
    ) -> BudgetResult:
        """Per-UTC-day or -month token budget: consume ``tokens`` if ``used + tokens <= limit``.

        ``force=True`` applies ``tokens`` unconditionally (usage reconciliation; negative refunds).
        """
        ...

    # -- concurrency leases ---------------------------------------------------------------------------------
    async def acquire_lease(self, resource: str, holder: str, limit: int, ttl_s: float) -> bool:
        """Take one of ``limit`` slots of ``resource`` for ``holder`` until ``ttl_s`` from now.

        Idempotent for a holder that already holds a live lease (its expiry is extended). Leases of dead
        holders expire after their TTL, so a crashed replica does not leak capacity.
        """
        ...

    async def renew_lease(self, resource: str, holder: str, ttl_s: float) -> bool:
        """Extend a live lease to ``ttl_s`` from now; False if it has expired or was never held."""
        ...

    async def release_lease(self, resource: str, holder: str) -> bool:
        """Give the slot back; False if the holder held none."""
        ...

    async def lease_count(self, resource: str) -> int:
        """Live (unexpired) leases on ``resource``."""
        ...

    # -- broadcast ------------------------------------------------------------------------------------------
    async def publish(self, channel: str, message: bytes) -> None:
        """Deliver ``message`` to every current subscriber of ``channel`` on every replica (at most once)."""
        ...

    async def subscribe(self, channel: str) -> Subscription:
        """Subscribe; every message published after this returns is delivered (while the backend is up)."""
        ...

    # -- KV with TTL ----------------------------------------------------------------------------------------
    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, ttl_s: float | None = None, only_if_absent: bool = False) -> bool:
        """Store ``value``; with ``only_if_absent`` nothing is written if the key exists (returns False)."""
        ...

    async def delete(self, key: str) -> bool: ...

    async def append(self, key: str, value: bytes, max_len: int, ttl_s: float | None = None) -> int:
        """Append to a list kept to its newest ``max_len`` items (replay buffers); returns the new length."""
        ...

    async def list_range(self, key: str, start: int = 0, end: int = -1) -> list[bytes]:
        """Items ``start..end`` inclusive (negative counts from the end), oldest first."""
        ...

    # -- lifecycle ------------------------------------------------------------------------------------------
    async def health(self) -> StateHealth: ...

    async def aclose(self) -> None: ...
