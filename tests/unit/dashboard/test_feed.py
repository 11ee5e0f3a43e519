"""The dashboard feed from a real prometheus_client registry (the gateway's ``GatewayMetrics``), time passed in."""

from __future__ import annotations

import math
from collections.abc import Iterable

import pytest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from tokenyard.dashboard.feed import DashboardFeed
from tokenyard.dashboard.snapshot import bucket_delta, histogram_quantile, read_registry
from tokenyard.telemetry.metrics import GatewayMetrics


def test_histogram_quantile_matches_prometheus() -> None:
    # 10 observations: 5 in (0, 0.1], 4 in (0.1, 0.5], 1 in (0.5, +Inf)
    buckets = {0.1: 5.0, 0.5: 9.0, math.inf: 10.0}
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.1)  # rank 5: top of the first bucket
    assert histogram_quantile(0.7, buckets) == pytest.approx(0.1 + 0.4 * (7 - 5) / 4)
    assert histogram_quantile(0.95, buckets) == pytest.approx(0.5)  # rank in +Inf: highest finite bound
    assert histogram_quantile(0.95, {0.1: 0.0, math.inf: 0.0}) is None
    assert histogram_quantile(0.5, {}) is None


def test_bucket_delta_and_reset() -> None:
    assert bucket_delta({1.0: 5, math.inf: 7}, {1.0: 2, math.inf: 3}) == {1.0: 3, math.inf: 4}
    assert bucket_delta({1.0: 1, math.inf: 1}, {1.0: 2, math.inf: 3}) == {1.0: 1, math.inf: 1}  # reset


def test_snapshot_sums_over_hidden_labels() -> None:
    m = GatewayMetrics()
    m.series("a", "premium").ttft.observe(0.05)
    m.series("b", "premium").ttft.observe(0.05)
    m.cache_requests.labels("exact", "hit").inc(2)
    m.cache_requests.labels("semantic", "hit").inc(1)
    snap = read_registry(m.registry, 7.0)
    assert snap.at == 7.0
    assert snap.ttft["premium"][math.inf] == 2
    assert snap.cache["hit"] == 3


def test_feed_derives_windowed_p95_rates_and_gauges() -> None:
    m = GatewayMetrics()
    feed = DashboardFeed(m.registry, interval_s=1.0, history_s=10.0, window_s=3.0, rate_window_s=2.0)
    premium = m.series("chat", "premium")
    for _ in range(20):
        premium.ttft.observe(0.04)  # all in (0.025, 0.05]
    feed.sample(0.0)
    first = feed.samples[-1]
    assert first.ttft_p95_ms["premium"] is not None and 25 < first.ttft_p95_ms["premium"] <= 50
    assert first.admitted_rps == 0.0  # no earlier snapshot to take a rate against

    for _ in range(9):
        premium.outcomes["completed"].inc()
    premium.outcomes["client_resumed"].inc()  # admitted too: its stream was dropped and resumed
    premium.outcomes["shed"].inc(4)
    m.queue_depth.labels("standard").set(7)
    m.degradation_level.set(2)
    m.backend_up.labels("sim-1").set(1)
    m.backend_inflight.labels("sim-1").set(3)
    m.aborts_by_reason["client_disconnect"].inc(2)
    m.cancel_latency.observe(0.002)
    m.cache_requests.labels("exact", "hit").inc(6)
    feed.sample(2.0)
    s = feed.samples[-1]
    assert s.admitted_rps == pytest.approx(10 / 2.0)
    assert s.shed_rps == pytest.approx(4 / 2.0)
    assert s.queue_depth == {"standard": 7.0}
    assert s.degradation_level == 2.0
    assert s.backend_up == {"sim-1": 1.0} and s.backend_inflight == {"sim-1": 3.0}
    assert s.aborts_rps["client_disconnect"] == pytest.approx(1.0)
    assert s.cancel_p95_ms is not None and 1.0 < s.cancel_p95_ms <= 2.5
    assert s.cache_hit_rps == pytest.approx(3.0)

    # Slow requests now; once the fast ones are older than the window, the p95 is the slow bucket's.
    for t in (3.0, 4.0, 5.0):
        for _ in range(5):
            premium.ttft.observe(1.8)  # (1.5, 2.0]
        feed.sample(t)
    assert feed.samples[-1].ttft_p95_ms["premium"] is not None
    assert 1500 < (feed.samples[-1].ttft_p95_ms["premium"] or 0) <= 2000


def test_ring_buffer_is_bounded_and_feed_pads_late_keys() -> None:
    m = GatewayMetrics()
    feed = DashboardFeed(m.registry, interval_s=1.0, history_s=4.0)
    for t in range(3):
        feed.sample(float(t))
    m.queue_depth.labels("batch").set(1)
    for t in range(3, 10):
        feed.sample(float(t))
    data = feed.feed()
    assert data["samples"] == len(feed.samples) == 5
    assert data["t"] == [-4.0, -3.0, -2.0, -1.0, 0.0]
    assert data["series"]["queue_depth"]["batch"] == [1.0] * 5
    m2 = GatewayMetrics()
    feed2 = DashboardFeed(m2.registry)
    feed2.sample(0.0)
    m2.queue_depth.labels("premium").set(2)
    feed2.sample(1.0)
    assert feed2.feed()["series"]["queue_depth"] == {"premium": [None, 2.0]}


def test_a_snapshot_collects_only_the_metrics_it_draws() -> None:
    """The registry grows with the pools (7 phase histograms per backend); a snapshot, taken every second on the
    event loop, must not collect what it does not draw."""

    class Refuses(Collector):
        def describe(self) -> Iterable[Metric]:
            return [GaugeMetricFamily("tokenyard_not_drawn", "a metric the dashboard does not read")]

        def collect(self) -> Iterable[Metric]:
            raise AssertionError("collected a metric the dashboard does not draw")

    metrics = GatewayMetrics()
    metrics.registry.register(Refuses())
    for backend in range(3):
        metrics.upstream_phase.labels(f"b{backend}", "decode").observe(0.1)
        metrics.backend_up.labels(f"b{backend}").set(1)
    metrics.series("m", "standard").outcomes["completed"].inc()
    snap = read_registry(metrics.registry, 1.0)
    assert snap.outcomes["completed"] == 1.0
    assert snap.backend_up == {"b0": 1.0, "b1": 1.0, "b2": 1.0}
