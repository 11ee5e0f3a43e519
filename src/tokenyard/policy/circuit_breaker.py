"""Per-endpoint circuit breaker: closed -> open -> half-open -> closed.

Closed: everything passes; ``failure_threshold`` consecutive failures open it. Open: nothing passes for
``open_s``. Half-open: at most ``half_open_probes`` requests at a time probe the endpoint; ``success_threshold``
successes close it, one failure opens it again. Time is passed in; the object does no I/O.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class BreakerState(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    """Defaults: open after 5 consecutive failures, for 10 s, then 1 probe at a time, 2 successes to close."""

    failure_threshold: int = 5
    open_s: float = 10.0
    half_open_probes: int = 1
    success_threshold: int = 2

    def __post_init__(self) -> None:
        if min(self.failure_threshold, self.half_open_probes, self.success_threshold) < 1 or self.open_s < 0:
            raise ValueError("breaker thresholds and probes must be at least 1, open_s >= 0")


class CircuitBreaker:
    """Call :meth:`allow` before an attempt; report its end with success, failure or cancelled."""

    def __init__(self, config: BreakerConfig | None = None) -> None:
        self.config = config or BreakerConfig()
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._successes = 0
        self._opened_at = 0.0
        self._probes = 0
        # When the breaker last closed after a half-open trial: the endpoint's slow start begins here.
        self.closed_at: float | None = None

    def state(self, now: float) -> BreakerState:
        """The state at ``now`` (an open breaker whose time is up reads as half-open)."""
        if self._state is BreakerState.OPEN and now - self._opened_at >= self.config.open_s:
            self._state = BreakerState.HALF_OPEN
            self._successes = 0
            self._probes = 0
        return self._state

    def available(self, now: float) -> bool:
        """Whether :meth:`allow` would let a request through now (takes nothing)."""
        state = self.state(now)
        return state is BreakerState.CLOSED or (
            state is BreakerState.HALF_OPEN and self._probes < self.config.half_open_probes
        )

    def allow(self, now: float) -> bool:
        """Let one attempt through (in half-open this takes a probe slot) or refuse it."""
        if not self.available(now):
            return False
        if self._state is BreakerState.HALF_OPEN:
            self._probes += 1
        return True

    def _end_probe(self) -> None:
        if self._state is BreakerState.HALF_OPEN:
            self._probes = max(0, self._probes - 1)

    def record_success(self, now: float) -> None:
        """An allowed attempt succeeded."""
        self._end_probe()
        if self.state(now) is BreakerState.HALF_OPEN:
            self._successes += 1
            if self._successes >= self.config.success_threshold:
                self._state = BreakerState.CLOSED
                self._failures = 0
                self.closed_at = now
        else:
            self._failures = 0

    def record_failure(self, now: float) -> None:
        """An allowed attempt failed because of the endpoint (connect error, 5xx, timeout)."""
        self._end_probe()
        state = self.state(now)
        if state is BreakerState.HALF_OPEN:
            self._open(now)
        elif state is BreakerState.CLOSED:
            self._failures += 1
            if self._failures >= self.config.failure_threshold:
                self._open(now)

    def record_cancelled(self) -> None:
        """An allowed attempt ended without a verdict (client gone, hedge loser): only frees its probe slot."""
        self._end_probe()

    def _open(self, now: float) -> None:
        self._state = BreakerState.OPEN
        self._opened_at = now
        self._failures = 0
        self._successes = 0
        self._probes = 0
