"""The dashboard's data: a ring buffer of derived samples and the JSON feed built from it (pure: time is passed in).

Every ``interval_s`` the sampler reads the registry (``snapshot.read_registry``) and derives one ``Sample``:

- TTFT p95 per class over the last ``window_s`` (bucket deltas against the snapshot ``window_s`` ago),
- queue depth per class, degradation level, backend up / in flight (gauges, as they are),
- admitted / shed / rate-limited requests per second over the last ``rate_window_s``: *admitted* counts outcomes
  of requests that got past admission (completed, client_aborted, client_resumed, upstream_interrupted, error,
  cached), *shed* counts shed and expired,
- aborted zombie work: upstream aborts per second by reason and the cancel latency p95 over ``window_s``,
- cache hits and misses per second.

The last ``history_s / interval_s`` samples are kept; ``feed()`` lays them out as one array per series.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry

from tokenyard.dashboard.snapshot import Snapshot, bucket_delta, histogram_quantile, read_registry

ADMITTED = ("completed", "client_aborted", "client_resumed", "upstream_interrupted", "error", "cached")
SHED = ("shed", "expired")


@dataclass
class Sample:
    at: float
    ttft_p95_ms: dict[str, float | None] = field(default_factory=dict)
    queue_depth: dict[str, float] = field(default_factory=dict)
    admitted_rps: float = 0.0
    shed_rps: float = 0.0
    rate_limited_rps: float = 0.0
    degradation_level: float = 0.0
    backend_up: dict[str, float] = field(default_factory=dict)
    backend_inflight: dict[str, float] = field(default_factory=dict)
    aborts_rps: dict[str, float] = field(default_factory=dict)
    cancel_p95_ms: float | None = None
    cache_hit_rps: float = 0.0
    cache_miss_rps: float = 0.0


class DashboardFeed:
    """Samples of one gateway's registry. Not thread-safe: call from the event loop only."""

    def __init__(self, registry: CollectorRegistry, *, interval_s: float = 1.0, history_s: float = 300.0,
                 window_s: float = 30.0, rate_window_s: float = 5.0,
                 read: Callable[[CollectorRegistry, float], Snapshot] = read_registry) -> None:
        self.registry = registry
        self.interval_s = interval_s
        self.window_s = window_s
        self.rate_window_s = rate_window_s
        size = max(2, int(history_s / interval_s) + 1)
        self.samples: deque[Sample] = deque(maxlen=size)
        # Raw snapshots reach back far enough for the longest window.
        self._snapshots: deque[Snapshot] = deque(maxlen=max(2, int(max(window_s, rate_window_s) / interval_s) + 2))
        self._read = read

    def sample(self, now: float) -> Sample:
        """Read the registry at ``now`` (the caller's clock, seconds) and append one derived sample."""
        snap = self._read(self.registry, now)
        window = self._before(now - self.window_s)
        # Rates need a base: before rate_window_s of history exists, rate over what there is.
        rate_base = self._before(now - self.rate_window_s) or (self._snapshots[0] if self._snapshots else None)
        self._snapshots.append(snap)
        s = Sample(at=now, queue_depth=dict(snap.queue_depth), degradation_level=snap.degradation_level,
                   backend_up=dict(snap.backend_up), backend_inflight=dict(snap.backend_inflight))
        for klass, buckets in snap.ttft.items():
            p95 = histogram_quantile(0.95, bucket_delta(buckets, window.ttft.get(klass) if window else None))
            s.ttft_p95_ms[klass] = None if p95 is None else round(p95 * 1000.0, 3)
        cancel = histogram_quantile(0.95, bucket_delta(snap.cancel_latency, window.cancel_latency if window else None))
        s.cancel_p95_ms = None if cancel is None else round(cancel * 1000.0, 4)
        if rate_base is not None and now > rate_base.at:
            dt = now - rate_base.at
            s.admitted_rps = _rate(snap.outcomes, rate_base.outcomes, ADMITTED, dt)
            s.shed_rps = _rate(snap.outcomes, rate_base.outcomes, SHED, dt)
            s.rate_limited_rps = _rate(snap.outcomes, rate_base.outcomes, ("rate_limited",), dt)
            s.aborts_rps = {reason: _rate(snap.aborts, rate_base.aborts, (reason,), dt) for reason in snap.aborts}
            s.cache_hit_rps = _rate(snap.cache, rate_base.cache, ("hit",), dt)
            s.cache_miss_rps = _rate(snap.cache, rate_base.cache, ("miss",), dt)
        self.samples.append(s)
        return s

    def _before(self, start: float) -> Snapshot | None:
        """The newest kept snapshot taken at or before ``start``: the base of a window that begins at ``start``.

        None when every snapshot is younger (the app is younger than the window): then the window counts from zero.
        """
        found = None
        for snap in self._snapshots:
            if snap.at > start:
                break
            found = snap
        return found

    def feed(self) -> dict[str, Any]:
        """The JSON document of ``GET /dashboard/data.json`` (see docs/dashboard.md)."""
        samples = list(self.samples)
        last = samples[-1].at if samples else 0.0
        return {
            "interval_s": self.interval_s,
            "window_s": self.window_s,
            "rate_window_s": self.rate_window_s,
            "samples": len(samples),
            "t": [round(s.at - last, 3) for s in samples],
            "series": {
                "ttft_p95_ms": _keyed(samples, lambda s: s.ttft_p95_ms),
                "queue_depth": _keyed(samples, lambda s: s.queue_depth),
                "requests_rps": {"admitted": [round(s.admitted_rps, 4) for s in samples],
                                 "shed": [round(s.shed_rps, 4) for s in samples],
                                 "rate_limited": [round(s.rate_limited_rps, 4) for s in samples]},
                "degradation_level": {"level": [s.degradation_level for s in samples]},
                "backend_inflight": _keyed(samples, lambda s: s.backend_inflight),
                "backend_up": _keyed(samples, lambda s: s.backend_up),
                "aborts_rps": _keyed(samples, lambda s: {k: round(v, 4) for k, v in s.aborts_rps.items()}),
                "cancel_p95_ms": {"p95": [s.cancel_p95_ms for s in samples]},
                "cache_rps": {"hit": [round(s.cache_hit_rps, 4) for s in samples],
                              "miss": [round(s.cache_miss_rps, 4) for s in samples]},
            },
        }


def _rate(new: dict[str, float], old: dict[str, float], keys: tuple[str, ...], dt: float) -> float:
    delta = sum(new.get(k, 0.0) - old.get(k, 0.0) for k in keys)
    return max(0.0, delta) / dt  # a reset registry reads as no traffic, not a negative rate


def _keyed(samples: list[Sample], pick: Callable[[Sample], dict[str, Any]]) -> dict[str, list[Any]]:
    """One array per key seen in any sample; None where a sample lacks the key."""
    keys: list[str] = []
    for s in samples:
        for k in pick(s):
            if k not in keys:
                keys.append(k)
    return {k: [pick(s).get(k) for s in samples] for k in sorted(keys)}
