"""Token buckets for requests-per-minute / tokens-per-minute limits, and a concurrency counter.

Pure: every method takes ``now`` (seconds on any monotonic clock). A bucket holds ``level`` units, refills
continuously at ``capacity / period_s`` per second up to ``capacity``, is charged by an estimate at admission
and reconciled with real usage afterwards. Reconciliation may push the level below zero (a debt): the
tenant then waits until refill pays it off, which is how an under-estimate is charged without rejecting a
request that already ran.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class TokenBucket:
    """A continuously refilling bucket of ``capacity`` units per ``period_s`` seconds."""

    capacity: float
    period_s: float
    level: float
    updated: float

    @classmethod
    def per_minute(cls, limit: float, now: float) -> TokenBucket:
        """A full bucket allowing ``limit`` units per minute."""
        if limit <= 0:
            raise ValueError("limit must be positive")
        return cls(capacity=float(limit), period_s=60.0, level=float(limit), updated=now)

    @property
    def rate_per_s(self) -> float:
        return self.capacity / self.period_s

    def refill(self, now: float) -> None:
        """Add what accrued since the last update (time never runs backwards here)."""
        elapsed = max(0.0, now - self.updated)
        self.level = min(self.capacity, self.level + elapsed * self.rate_per_s)
        self.updated = max(self.updated, now)

    def can_take(self, amount: float, now: float) -> bool:
        """Whether ``amount`` fits now. A request larger than the whole bucket fits when the bucket is full,
        so an oversized request is slow rather than impossible."""
        self.refill(now)
        return self.level >= min(amount, self.capacity)

    def take(self, amount: float, now: float) -> None:
        """Charge ``amount`` unconditionally (callers check first with ``can_take``)."""
        self.refill(now)
        self.level -= amount

    def try_take(self, amount: float, now: float) -> bool:
        """Charge ``amount`` if it fits; return whether it was charged."""
        if not self.can_take(amount, now):
            return False
        self.level -= amount
        return True

    def adjust(self, delta: float, now: float) -> None:
        """Reconcile: ``delta > 0`` refunds (up to capacity), ``delta < 0`` debits (may go negative)."""
        self.refill(now)
        self.level = min(self.capacity, self.level + delta)

    def remaining(self, now: float) -> int:
        """Whole units available now, never negative (for ``x-ratelimit-remaining-*``)."""
        self.refill(now)
        return max(0, math.floor(self.level))

    def wait_for(self, amount: float, now: float) -> float:
        """Seconds until ``amount`` (capped at capacity) fits; 0 when it fits now. Used for Retry-After."""
        self.refill(now)
        need = min(amount, self.capacity) - self.level
        return 0.0 if need <= 0 else need / self.rate_per_s

    def reset_after(self, now: float) -> float:
        """Seconds until the bucket is full again (for ``x-ratelimit-reset-*``)."""
        self.refill(now)
        return max(0.0, (self.capacity - self.level) / self.rate_per_s)


@dataclass
class ConcurrencyCounter:
    """At most ``limit`` concurrent holders; ``limit=None`` means unlimited."""

    limit: int | None
    current: int = 0

    def can_acquire(self) -> bool:
        return self.limit is None or self.current < self.limit

    def try_acquire(self) -> bool:
        if not self.can_acquire():
            return False
        self.current += 1
        return True

    def release(self) -> None:
        """Give one slot back; releasing more than acquired is a bug, so it is clamped, not negative."""
        self.current = max(0, self.current - 1)

    def remaining(self) -> int | None:
        return None if self.limit is None else max(0, self.limit - self.current)
