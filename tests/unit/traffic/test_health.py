"""PoolHealth and the active checker, with an injected clock and probe (no network)."""

from __future__ import annotations

import pytest

from tokenyard.policy.circuit_breaker import BreakerConfig, BreakerState
from tokenyard.policy.outlier import OutlierConfig
from tokenyard.policy.pickers.endpoint import EndpointView, RequestFeatures
from tokenyard.policy.pickers.round_robin import RoundRobinPicker
from tokenyard.policy.slow_start import SlowStart
from tokenyard.traffic.health import (
    ActiveHealthChecker,
    HealthConfig,
    Outcome,
    PoolHealth,
    health_url,
    pick_with_permit,
)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


CONFIG = HealthConfig(
    unhealthy_threshold=2,
    healthy_threshold=1,
    outlier=OutlierConfig(consecutive_failures=3, base_ejection_s=10, max_ejection_s=40, max_ejected_share=0.5),
    breaker=BreakerConfig(failure_threshold=10, open_s=5, half_open_probes=1, success_threshold=1),
    slow_start=SlowStart(window_s=20, floor=0.1),
)


def pool(clock: Clock, n: int = 4, config: HealthConfig = CONFIG) -> PoolHealth:
    return PoolHealth([f"e{i}" for i in range(n)], config, clock)


@pytest.mark.parametrize(
    ("status", "outcome"), [(200, Outcome.SUCCESS), (404, Outcome.SUCCESS), (429, Outcome.OVERLOADED),
                            (500, Outcome.FAILURE), (503, Outcome.FAILURE)]
)
def test_outcome_from_status(status: int, outcome: Outcome) -> None:
    assert Outcome.from_status(status) is outcome


def test_everything_starts_routable_at_full_weight() -> None:
    health = pool(Clock())
    status = health.status("e0")
    assert status.routable and status.slow_start == 1.0 and status.circuit is BreakerState.CLOSED
    assert health.any_routable()
    assert not health.status("unknown").routable


def test_passive_failures_eject_then_return_through_slow_start() -> None:
    clock = Clock()
    health = pool(clock)
    for _ in range(3):
        assert health.try_begin("e1")
        health.report("e1", Outcome.CONNECT_ERROR)
    view = health.view(EndpointView(name="e1"))
    assert view.ejected and not view.available
    clock.now = 10.0  # first ejection: 10 s
    status = health.status("e1")
    assert status.routable and status.slow_start == pytest.approx(0.1)
    clock.now = 20.0
    assert health.status("e1").slow_start == pytest.approx(0.55)
    clock.now = 30.0
    assert health.status("e1").slow_start == 1.0


def test_overloaded_and_cancelled_are_not_failures() -> None:
    health = pool(Clock())
    for _ in range(10):
        health.try_begin("e0")
        health.report("e0", Outcome.OVERLOADED)
        health.report("e0", Outcome.CANCELLED)
    assert health.status("e0").routable


def test_max_ejected_share_keeps_half_the_pool() -> None:
    health = pool(Clock(), n=4)
    for name in health.names:
        for _ in range(3):
            health.report(name, Outcome.FAILURE)
    assert sum(health.status(n).ejected for n in health.names) == 2


def test_active_checks_mark_down_and_up_with_thresholds() -> None:
    clock = Clock()
    health = pool(clock, n=1)
    health.record_probe("e0", False)
    assert health.status("e0").healthy  # one failed probe is not enough
    health.record_probe("e0", False)
    assert not health.status("e0").healthy and not health.any_routable()
    clock.now = 7.0
    health.record_probe("e0", True)
    status = health.status("e0")
    assert status.healthy and status.slow_start == pytest.approx(0.1)
    clock.now = 17.0
    assert health.status("e0").slow_start == pytest.approx(0.55)


def test_breaker_opens_and_probes_half_open() -> None:
    clock = Clock()
    config = HealthConfig(
        outlier=OutlierConfig(consecutive_failures=100),
        breaker=BreakerConfig(failure_threshold=2, open_s=5, half_open_probes=1, success_threshold=1),
        slow_start=SlowStart(window_s=10, floor=0.2),
    )
    health = pool(clock, n=2, config=config)
    for _ in range(2):
        assert health.try_begin("e0")
        health.report("e0", Outcome.TIMEOUT)
    assert health.status("e0").ejected and not health.try_begin("e0")
    clock.now = 5.0
    assert health.status("e0").circuit is BreakerState.HALF_OPEN and health.status("e0").routable
    assert health.try_begin("e0") and not health.try_begin("e0")
    assert health.status("e0").ejected  # its one probe slot is taken
    health.report("e0", Outcome.SUCCESS, latency_s=0.01)
    status = health.status("e0")
    assert status.circuit is BreakerState.CLOSED and status.routable and status.slow_start == pytest.approx(0.2)


async def test_active_checker_feeds_probe_results() -> None:
    clock = Clock()
    health = pool(clock, n=2)
    up = {"http://a/health": True, "http://b/health": False}

    async def probe(url: str) -> bool:
        if url == "http://b/health" and not up[url]:
            raise OSError("probe crashed")  # a crashing probe counts as a failed check
        return up[url]

    checker = ActiveHealthChecker(health, {"e0": "http://a/health", "e1": "http://b/health"}, probe)
    await checker.check_once()
    await checker.check_once()
    assert health.status("e0").healthy and not health.status("e1").healthy and checker.rounds == 2
    up["http://b/health"] = True
    await checker.check_once()
    assert health.status("e1").healthy


def test_health_url() -> None:
    assert health_url("http://127.0.0.1:9001/v1") == "http://127.0.0.1:9001/health"
    assert health_url("http://127.0.0.1:9001/", "/ready") == "http://127.0.0.1:9001/ready"


def test_pick_with_permit_skips_a_refused_breaker() -> None:
    clock = Clock()
    config = HealthConfig(breaker=BreakerConfig(failure_threshold=1, open_s=1, half_open_probes=1))
    health = pool(clock, n=2, config=config)
    picker = RoundRobinPicker()
    endpoints = [EndpointView(name="e0"), EndpointView(name="e1")]
    health.try_begin("e0")
    health.report("e0", Outcome.FAILURE)
    first = pick_with_permit(picker, health, endpoints, RequestFeatures())
    assert first is not None and first.name == "e1"  # e0's breaker is open: filtered as ejected
    clock.now = 1.0
    # e0 is half-open: the first pick takes its only probe slot, the next one must go to e1.
    names = [p.name for p in (pick_with_permit(picker, health, endpoints, RequestFeatures()) for _ in range(2)) if p]
    assert sorted(names) == ["e0", "e1"]
    health.try_begin("e1")
    assert pick_with_permit(picker, health, [EndpointView(name="e0")], RequestFeatures()) is None


def test_views_match_one_view_per_endpoint_through_any_history() -> None:
    """``views`` skips the health fields of endpoints in the clear; it must answer exactly as ``view`` does."""
    import random

    rng = random.Random(7)
    clock = Clock()
    config = HealthConfig(
        unhealthy_threshold=2, healthy_threshold=1,
        outlier=OutlierConfig(consecutive_failures=2, base_ejection_s=3, max_ejection_s=12, max_ejected_share=0.5,
                              latency_factor=2.0, latency_margin_s=0.01, latency_min_samples=2, latency_min_pool=2),
        breaker=BreakerConfig(failure_threshold=3, open_s=2, half_open_probes=1, success_threshold=1),
        slow_start=SlowStart(window_s=4, floor=0.2),
    )
    health = pool(clock, 5, config)
    candidates = [EndpointView(name=f"e{i}") for i in range(5)] + [
        EndpointView(name="e1", healthy=False), EndpointView(name="e2", slow_start=0.5), EndpointView(name="nope")]
    outcomes = list(Outcome)
    cleared = 0
    for step in range(4000):
        name = f"e{rng.randrange(5)}"
        action = rng.random()
        if action < 0.15:
            clock.now += rng.choice((0.05, 0.5, 1.0, 3.0, 6.0))
        elif action < 0.3:
            health.record_probe(name, rng.random() < 0.7)
        elif health.try_begin(name):
            latency = rng.choice((0.01, 0.02, 0.2)) if name == "e3" else 0.01
            health.report(name, rng.choice(outcomes) if rng.random() < 0.4 else Outcome.SUCCESS, latency)
        assert health.views(candidates) == [health.view(c) for c in candidates], step
        listed = candidates[:5]  # the members as their endpoints list them: health fields at their defaults
        assert health.views(listed, as_listed=True) == [health.view(c) for c in listed], step
        cleared += not health._unsettled
    assert 0 < cleared < 4000  # both paths were taken: with every endpoint settled, and with some not
