"""Passive outlier detection: eject endpoints that fail in a row or answer far slower than their pool.

Two signals, as in Envoy's outlier detection: ``consecutive_failures`` failed attempts in a row (5xx,
connect errors, timeouts), and a latency outlier: an endpoint whose smoothed latency (EWMA of time to first
byte) is more than ``latency_factor`` times the pool median and at least ``latency_margin_s`` above it.
An ejection lasts ``base_ejection_s x n`` (n = how often it was ejected recently, capped at ``max_ejection_s``);
n decays by one per quiet ``base_ejection_s`` after the endpoint came back. Never more than
``max_ejected_share`` of the pool is ejected at once (so a single endpoint is never ejected passively;
active health checks still mark it down).
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class OutlierConfig:
    """Defaults: 5 failures in a row, 30 s growing to at most 300 s, half of the pool at most."""

    consecutive_failures: int = 5
    base_ejection_s: float = 30.0
    max_ejection_s: float = 300.0
    max_ejected_share: float = 0.5
    latency_factor: float = 3.0
    latency_margin_s: float = 0.05
    latency_min_samples: int = 10
    latency_min_pool: int = 3
    ewma_alpha: float = 0.2

    def __post_init__(self) -> None:
        if self.consecutive_failures < 1 or self.base_ejection_s < 0 or self.max_ejection_s < self.base_ejection_s:
            raise ValueError("outlier config needs consecutive_failures >= 1 and 0 <= base <= max ejection")
        if not 0.0 <= self.max_ejected_share <= 1.0 or not 0.0 < self.ewma_alpha <= 1.0:
            raise ValueError("max_ejected_share must be in [0, 1] and ewma_alpha in (0, 1]")


@dataclass(slots=True)
class _Endpoint:
    consecutive: int = 0
    ejections: int = 0
    ejected_until: float | None = None
    latency_ewma: float = 0.0
    samples: int = 0


class OutlierDetector:
    """Tracks the members of one pool. Every method takes ``now`` (monotonic seconds); no I/O."""

    def __init__(self, members: Iterable[str], config: OutlierConfig | None = None) -> None:
        self.config = config or OutlierConfig()
        self._state: dict[str, _Endpoint] = {name: _Endpoint() for name in members}
        # The latency EWMAs of the endpoints with enough samples, kept sorted: the pool median at every success
        # is then an index, not a sort of the whole pool. Every change of an EWMA or a sample count goes through
        # _unsample (before) and _sample (after).
        self._sampled = self._all_sampled()

    def _all_sampled(self) -> list[float]:
        least = self.config.latency_min_samples
        return sorted(s.latency_ewma for s in self._state.values() if s.samples >= least)

    def set_members(self, members: Iterable[str]) -> None:
        """Follow a pool change: keep the state of those that stay, start fresh for new ones."""
        names = list(members)
        self._state = {name: self._state.get(name, _Endpoint()) for name in names}
        self._sampled = self._all_sampled()

    def is_ejected(self, name: str, now: float) -> bool:
        state = self._state.get(name)
        return state is not None and state.ejected_until is not None and now < state.ejected_until

    def ejected(self, now: float) -> list[str]:
        """Names ejected at ``now``."""
        return [name for name in self._state if self.is_ejected(name, now)]

    def returned_at(self, name: str, now: float) -> float | None:
        """When the endpoint's last ejection ended, if it has ended (the start of its slow start)."""
        state = self._state.get(name)
        if state is None or state.ejected_until is None or now < state.ejected_until:
            return None
        return state.ejected_until

    def record_failure(self, name: str, now: float) -> bool:
        """An attempt on ``name`` failed; True when this ejected it."""
        state = self._state.get(name)
        if state is None or self.is_ejected(name, now):
            return False
        state.consecutive += 1
        if state.consecutive < self.config.consecutive_failures:
            return False
        return self._eject(name, state, now)

    def record_success(self, name: str, now: float, latency_s: float | None = None) -> bool:
        """An attempt on ``name`` succeeded after ``latency_s``; True when its latency ejected it."""
        state = self._state.get(name)
        if state is None:
            return False
        state.consecutive = 0
        if latency_s is None or self.is_ejected(name, now):
            return False
        alpha = self.config.ewma_alpha
        self._unsample(state)
        state.latency_ewma = latency_s if state.samples == 0 else alpha * latency_s + (1 - alpha) * state.latency_ewma
        state.samples += 1
        self._sample(state)
        if self._is_latency_outlier(state):
            return self._eject(name, state, now)
        return False

    def _is_latency_outlier(self, state: _Endpoint) -> bool:
        cfg = self.config
        if state.samples < cfg.latency_min_samples:
            return False
        sampled = self._sampled
        size = len(sampled)
        if size < cfg.latency_min_pool:
            return False
        middle = size // 2
        median = sampled[middle] if size % 2 else (sampled[middle - 1] + sampled[middle]) / 2
        return state.latency_ewma > cfg.latency_factor * median and state.latency_ewma - median >= cfg.latency_margin_s

    def _unsample(self, state: _Endpoint) -> None:
        """Take the endpoint's EWMA out of the sorted samples (before it changes or is reset)."""
        if state.samples >= self.config.latency_min_samples:
            del self._sampled[bisect_left(self._sampled, state.latency_ewma)]

    def _sample(self, state: _Endpoint) -> None:
        """Put the endpoint's EWMA into the sorted samples (after it changed), once it has enough samples."""
        if state.samples >= self.config.latency_min_samples:
            insort(self._sampled, state.latency_ewma)

    def _eject(self, name: str, state: _Endpoint, now: float) -> bool:
        allowed = math.floor(self.config.max_ejected_share * len(self._state))
        if len(self.ejected(now)) >= allowed:
            return False
        cfg = self.config
        if state.ejected_until is not None and cfg.base_ejection_s > 0:
            quiet = max(0.0, now - state.ejected_until)
            state.ejections = max(0, state.ejections - int(quiet // cfg.base_ejection_s))
        state.ejections += 1
        state.ejected_until = now + min(cfg.max_ejection_s, cfg.base_ejection_s * state.ejections)
        state.consecutive = 0
        # Judge a returning endpoint on fresh latency, not on the samples that got it ejected.
        self._unsample(state)
        state.samples = 0
        state.latency_ewma = 0.0
        self._sample(state)
        return True

    def ejection_count(self, name: str) -> int:
        """How many recent ejections count towards the next ejection's length."""
        state = self._state.get(name)
        return state.ejections if state is not None else 0
