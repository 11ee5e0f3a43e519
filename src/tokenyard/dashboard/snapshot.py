"""Reading the gateway's Prometheus registry into one plain snapshot of cumulative values (pure, no I/O).

Only the metrics the dashboard draws are kept, summed over the labels it does not show (a class's TTFT over all
models, cache results over all kinds). Counters and histogram buckets stay cumulative; ``feed`` turns two
snapshots into rates and windowed percentiles.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry

Buckets = dict[float, float]  # upper bound (le) -> cumulative count


@dataclass
class Snapshot:
    at: float  # the sampler's clock, seconds
    ttft: dict[str, Buckets] = field(default_factory=dict)  # class -> buckets
    outcomes: dict[str, float] = field(default_factory=dict)  # tokenyard_requests_total by outcome
    queue_depth: dict[str, float] = field(default_factory=dict)  # class -> gauge
    degradation_level: float = 0.0
    backend_up: dict[str, float] = field(default_factory=dict)
    backend_inflight: dict[str, float] = field(default_factory=dict)
    aborts: dict[str, float] = field(default_factory=dict)  # upstream aborts by reason
    cancel_latency: Buckets = field(default_factory=dict)
    cache: dict[str, float] = field(default_factory=dict)  # cache lookups by result (hit, miss, ...)


# The samples the dashboard reads. Only their metrics are collected: the whole registry grows with the pools
# (``tokenyard_upstream_phase_seconds`` has 7 histograms per backend), and collecting it all every second took
# 148 ms at 256 backends, an event-loop stall on every sample.
DRAWN = (
    "tokenyard_time_to_first_token_seconds_bucket",
    "tokenyard_requests_total",
    "tokenyard_queue_depth",
    "tokenyard_degradation_level",
    "tokenyard_backend_up",
    "tokenyard_backend_inflight",
    "tokenyard_upstream_aborts_total",
    "tokenyard_cancel_latency_seconds_bucket",
    "tokenyard_cache_requests_total",
)


def read_registry(registry: CollectorRegistry, at: float) -> Snapshot:
    """One pass over the drawn metrics of ``registry``; metrics that are not there yet are simply empty."""
    snap = Snapshot(at=at)
    for family in registry.restricted_registry(DRAWN).collect():
        for s in family.samples:
            name, labels, value = s.name, s.labels, float(s.value)
            if name == "tokenyard_time_to_first_token_seconds_bucket":
                _add_bucket(snap.ttft.setdefault(labels.get("class", ""), {}), labels["le"], value)
            elif name == "tokenyard_requests_total":
                _add(snap.outcomes, labels.get("outcome", ""), value)
            elif name == "tokenyard_queue_depth":
                _add(snap.queue_depth, labels.get("class", ""), value)
            elif name == "tokenyard_degradation_level":
                snap.degradation_level = value
            elif name == "tokenyard_backend_up":
                snap.backend_up[labels.get("backend", "")] = value
            elif name == "tokenyard_backend_inflight":
                snap.backend_inflight[labels.get("backend", "")] = value
            elif name == "tokenyard_upstream_aborts_total":
                _add(snap.aborts, labels.get("reason", ""), value)
            elif name == "tokenyard_cancel_latency_seconds_bucket":
                _add_bucket(snap.cancel_latency, labels["le"], value)
            elif name == "tokenyard_cache_requests_total":
                _add(snap.cache, labels.get("result", ""), value)
    return snap


def _add(target: dict[str, float], key: str, value: float) -> None:
    target[key] = target.get(key, 0.0) + value


def _add_bucket(target: Buckets, le: str, value: float) -> None:
    bound = math.inf if le in ("+Inf", "inf", "Inf") else float(le)
    target[bound] = target.get(bound, 0.0) + value


def bucket_delta(new: Buckets, old: Buckets | None) -> Buckets:
    """Observations between two cumulative snapshots of the same histogram (a reset counts from zero)."""
    if not old:
        return dict(new)
    out = {le: count - old.get(le, 0.0) for le, count in new.items()}
    if any(v < 0 for v in out.values()):  # the registry was reset: everything in ``new`` is new
        return dict(new)
    return out


def histogram_quantile(q: float, buckets: Buckets) -> float | None:
    """Prometheus's ``histogram_quantile``: linear interpolation inside the bucket holding rank ``q * total``.

    None when there are no observations; the highest finite bound when the rank falls in the ``+Inf`` bucket.
    """
    if not buckets:
        return None
    bounds = sorted(buckets)
    total = buckets[bounds[-1]] if math.isinf(bounds[-1]) else max(buckets.values())
    if total <= 0:
        return None
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for le in bounds:
        count = buckets[le]
        if count >= rank:
            if math.isinf(le):
                return lower_bound
            if count == lower_count:
                return le
            return lower_bound + (le - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = le, count
    return lower_bound
