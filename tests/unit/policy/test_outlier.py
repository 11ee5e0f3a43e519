"""Passive outlier detection: consecutive failures, latency outliers, growing ejection, max ejected share."""

from __future__ import annotations

import pytest

from tokenyard.policy.outlier import OutlierConfig, OutlierDetector

CFG = OutlierConfig(consecutive_failures=3, base_ejection_s=10, max_ejection_s=25, max_ejected_share=0.5)


def detector(n: int = 4, config: OutlierConfig = CFG) -> OutlierDetector:
    return OutlierDetector([f"e{i}" for i in range(n)], config)


def test_consecutive_failures_eject() -> None:
    d = detector()
    assert [d.record_failure("e0", 0) for _ in range(3)] == [False, False, True]
    assert d.is_ejected("e0", 5) and d.ejected(5) == ["e0"]
    assert not d.is_ejected("e0", 10)
    assert d.returned_at("e0", 12) == 10 and d.returned_at("e0", 5) is None


def test_success_resets_the_count() -> None:
    d = detector()
    for _ in range(2):
        d.record_failure("e0", 0)
    d.record_success("e0", 0)
    assert not d.record_failure("e0", 0) and not d.record_failure("e0", 0)
    assert d.record_failure("e0", 0)


def test_ejection_grows_and_is_capped() -> None:
    d = detector()
    now = 0.0
    durations = []
    for _ in range(4):
        for _ in range(3):
            d.record_failure("e1", now)
        start = now
        while d.is_ejected("e1", now):
            now += 1
        durations.append(now - start)
    assert durations == [10, 20, 25, 25]


def test_ejection_count_decays_after_quiet_time() -> None:
    d = detector()
    for _ in range(3):
        d.record_failure("e1", 0)
    for _ in range(3):
        d.record_failure("e1", 10)
    assert d.ejection_count("e1") == 2  # came back at 10 and failed right away: 20 s this time
    # Back at 30, quiet until 60: two base periods decay the count to 0, so the next ejection is 10 s again.
    for _ in range(3):
        d.record_failure("e1", 60)
    assert d.ejection_count("e1") == 1 and d.is_ejected("e1", 69) and not d.is_ejected("e1", 70)


@pytest.mark.parametrize(("pool", "share", "max_ejected"), [(4, 0.5, 2), (3, 0.5, 1), (1, 0.5, 0), (10, 0.1, 1)])
def test_never_more_than_max_share_ejected(pool: int, share: float, max_ejected: int) -> None:
    d = detector(pool, OutlierConfig(consecutive_failures=1, max_ejected_share=share))
    for i in range(pool):
        d.record_failure(f"e{i}", 0)
    assert len(d.ejected(0)) == max_ejected


def test_latency_outlier_is_ejected_against_pool_median() -> None:
    d = detector(4, OutlierConfig(latency_min_samples=5, latency_factor=3.0, latency_margin_s=0.05))
    ejected = False
    for step in range(10):
        for name in ("e0", "e1", "e2"):
            d.record_success(name, step, latency_s=0.1)
        ejected = ejected or d.record_success("e3", step, latency_s=1.0)
    assert ejected and d.ejected(10) == ["e3"]


def test_uniformly_slow_pool_is_not_an_outlier() -> None:
    d = detector(3, OutlierConfig(latency_min_samples=5))
    for step in range(20):
        for name in ("e0", "e1", "e2"):
            assert not d.record_success(name, step, latency_s=2.0)


def test_small_absolute_gap_is_ignored() -> None:
    d = detector(3, OutlierConfig(latency_min_samples=3, latency_margin_s=0.05))
    for step in range(10):
        d.record_success("e0", step, 0.001)
        d.record_success("e1", step, 0.001)
        assert not d.record_success("e2", step, 0.02)  # 20x slower but only 19 ms: noise


def test_members_change_keeps_state_of_those_that_stay() -> None:
    d = detector(3, OutlierConfig(consecutive_failures=1))
    d.record_failure("e0", 0)
    d.set_members(["e0", "e1", "new"])
    assert d.is_ejected("e0", 1) and not d.is_ejected("new", 1)
    assert not d.record_failure("gone", 1)


def test_invalid() -> None:
    with pytest.raises(ValueError):
        OutlierConfig(max_ejected_share=2.0)


@pytest.mark.parametrize("min_samples", [0, 1, 3])
def test_sorted_samples_follow_every_change(min_samples: int) -> None:
    """The pool median comes from a sorted list kept up to date; it must always equal a fresh sort."""
    import random
    import statistics

    rng = random.Random(min_samples)
    config = OutlierConfig(consecutive_failures=2, base_ejection_s=2, max_ejection_s=8, latency_min_samples=min_samples,
                           latency_min_pool=2, latency_factor=2.0, latency_margin_s=0.01)
    d = detector(6, config)
    ejections = 0
    for step in range(3000):
        now = step * 0.05
        name = f"e{rng.randrange(6)}"
        if rng.random() < 0.1:
            d.record_failure(name, now)
        else:
            latency = rng.choice((0.01, 0.012, 0.015)) * (8 if name == "e5" else 1)
            ejections += d.record_success(name, now, latency)
        if rng.random() < 0.01:
            d.set_members([f"e{i}" for i in range(6)])
        fresh = sorted(s.latency_ewma for s in d._state.values() if s.samples >= min_samples)
        assert d._sampled == fresh, step
        if len(fresh) >= 2:
            middle = len(d._sampled) // 2
            odd = len(d._sampled) % 2
            ours = d._sampled[middle] if odd else (d._sampled[middle - 1] + d._sampled[middle]) / 2
            assert ours == statistics.median(fresh)
    assert ejections > 0  # the slow endpoint was ejected for its latency along the way
