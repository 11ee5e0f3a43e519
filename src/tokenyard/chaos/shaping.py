"""Pure traffic-shaping arithmetic used by the proxy's pumps: delivery times, token bucket, segmenting.

Times are plain floats in seconds on whatever monotonic clock the caller uses (the event loop's ``time()``);
nothing here reads a clock or sleeps.
"""

from __future__ import annotations

import random
from collections.abc import Iterator


class DelayLine:
    """Scheduled delivery time per chunk: arrival + latency +/- jitter, never earlier than the previous chunk.

    Clamping to the previous delivery time is what keeps byte order: a chunk whose jitter draw is smaller than
    its predecessor's simply leaves right after it instead of overtaking it.
    """

    def __init__(self, latency_s: float, jitter_s: float, rng: random.Random) -> None:
        self._latency = latency_s
        self._jitter = jitter_s
        self._rng = rng
        self._last = float("-inf")

    def delay_for_next(self) -> float:
        """The next chunk's own delay (latency plus a uniform jitter draw), never negative."""
        jitter = self._rng.uniform(-self._jitter, self._jitter) if self._jitter else 0.0
        return max(0.0, self._latency + jitter)

    def schedule(self, arrived_at: float) -> float:
        """When a chunk that arrived at ``arrived_at`` may be delivered."""
        deliver_at = max(arrived_at + self.delay_for_next(), self._last)
        self._last = deliver_at
        return deliver_at


class TokenBucket:
    """A token bucket in bytes: ``rate`` bytes/s refill, at most ``burst`` bytes saved up.

    :meth:`reserve` always grants the bytes and returns how long the caller must wait before sending them
    (the bucket goes into debt), so one sender gets an exact long-run rate without polling.
    """

    def __init__(self, rate: float, burst: float, now: float) -> None:
        if rate <= 0:
            raise ValueError("rate must be > 0")
        if burst <= 0:
            raise ValueError("burst must be > 0")
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._stamp = now

    def _refill(self, now: float) -> None:
        if now > self._stamp:
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now

    def reserve(self, nbytes: int, now: float) -> float:
        """Take ``nbytes``; return the seconds to wait before sending them (0 when tokens were available)."""
        self._refill(now)
        self._tokens -= nbytes
        if self._tokens >= 0:
            return 0.0
        return -self._tokens / self.rate


def default_burst(rate: float) -> int:
    """A burst of ~20 ms of traffic (at least 1 KiB) keeps the cap smooth yet allows full-size segments."""
    return max(1024, int(rate * 0.02))


def segments(data: bytes, size: int) -> Iterator[bytes]:
    """``data`` cut into pieces of at most ``size`` bytes (the whole of it when ``size`` is 0)."""
    if not data:
        return
    if size <= 0 or len(data) <= size:
        yield data
        return
    view = memoryview(data)
    for start in range(0, len(data), size):
        yield bytes(view[start : start + size])


def split_at_limit(data: bytes, sent: int, limit: int | None) -> tuple[bytes, bool]:
    """The part of ``data`` that may still go out when ``sent`` bytes already went and the limit is ``limit``.

    Returns ``(allowed, reached)``; ``reached`` is True when the limit is hit within (or before) this data.
    """
    if limit is None:
        return data, False
    room = limit - sent
    if room <= 0:
        return b"", True
    if len(data) >= room:
        return data[:room], True
    return data, False
