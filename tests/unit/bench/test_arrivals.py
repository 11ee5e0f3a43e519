"""Arrival processes: rates, shapes and bounds, with seeded RNGs."""

from __future__ import annotations

import itertools
import random
import statistics

import pytest

from tokenyard.bench.arrivals import Arrivals, parse_arrivals
from tokenyard.bench.errors import WorkloadError


def test_poisson_rate_is_within_tolerance_over_many_seeds() -> None:
    arrivals = Arrivals(kind="poisson", rate=20.0)
    counts = [len(arrivals.schedule(10.0, 10_000, random.Random(seed))) for seed in range(200)]
    # 200 samples of Poisson(200): the mean is within 1.5 % of 200 with overwhelming probability.
    assert statistics.mean(counts) == pytest.approx(200, rel=0.015)
    # A Poisson count's variance equals its mean; evenly paced sends would have none.
    assert statistics.variance(counts) == pytest.approx(200, rel=0.3)


def test_poisson_gaps_are_exponential() -> None:
    times = Arrivals(kind="poisson", rate=50.0).schedule(200.0, 100_000, random.Random(1))
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert statistics.mean(gaps) == pytest.approx(1 / 50, rel=0.03)
    assert statistics.stdev(gaps) == pytest.approx(1 / 50, rel=0.05)  # exponential: stdev == mean


def test_constant_is_evenly_paced() -> None:
    times = Arrivals(kind="constant", rate=4.0, poisson=False).schedule(2.0, 100, random.Random(0))
    assert times == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75])


def test_schedule_is_bounded_in_count_and_time_and_sorted() -> None:
    arrivals = Arrivals(kind="poisson", rate=1000.0)
    times = arrivals.schedule(5.0, 123, random.Random(0))
    assert len(times) == 123
    assert times == sorted(times)
    assert all(0 <= t < 5.0 for t in Arrivals(kind="poisson", rate=10).schedule(5.0, 10_000, random.Random(0)))
    assert arrivals.schedule(0.0, 10, random.Random(0)) == []
    assert arrivals.schedule(5.0, 0, random.Random(0)) == []


def test_same_seed_same_schedule() -> None:
    arrivals = Arrivals(kind="surge", rate=5, multiplier=3, start_s=2, length_s=2)
    assert arrivals.schedule(10, 1000, random.Random(7)) == arrivals.schedule(10, 1000, random.Random(7))
    assert arrivals.schedule(10, 1000, random.Random(7)) != arrivals.schedule(10, 1000, random.Random(8))


def test_surge_shape_multiplies_the_rate_inside_the_window_only() -> None:
    arrivals = Arrivals(kind="surge", rate=10.0, multiplier=4.0, start_s=10.0, length_s=10.0)
    assert arrivals.rate_at(5) == 10 and arrivals.rate_at(10) == 40 and arrivals.rate_at(19.9) == 40
    assert arrivals.rate_at(20) == 10
    inside = outside = 0
    for seed in range(50):
        for t in arrivals.schedule(30.0, 100_000, random.Random(seed)):
            if 10 <= t < 20:
                inside += 1
            else:
                outside += 1
    # 10 s at 40/s inside vs 20 s at 10/s outside, per seed: 400 vs 200.
    assert inside / 50 == pytest.approx(400, rel=0.05)
    assert outside / 50 == pytest.approx(200, rel=0.05)


def test_deterministic_surge_paces_at_the_surge_rate() -> None:
    arrivals = Arrivals(kind="surge", rate=2.0, poisson=False, multiplier=5.0, start_s=1.0, length_s=1.0)
    times = arrivals.schedule(3.0, 100, random.Random(0))
    assert sum(1 for t in times if 1.0 <= t < 2.0) == 10
    assert sum(1 for t in times if t < 1.0) == 2


def test_spike_defaults_are_short_and_tall() -> None:
    spike = parse_arrivals({"kind": "spike", "rate": 2, "start_s": 5})
    assert spike.multiplier == 10 and spike.length_s == 1
    assert spike.rate_at(5.5) == 20 and spike.rate_at(6.5) == 2


def test_diurnal_sends_more_in_the_peak_half_than_the_trough_half() -> None:
    arrivals = Arrivals(kind="diurnal", rate=20.0, period_s=20.0, amplitude=0.8)
    assert arrivals.rate_at(5.0) == pytest.approx(36.0)  # sin peak at a quarter period
    assert arrivals.rate_at(15.0) == pytest.approx(4.0)
    peak = trough = 0
    for seed in range(30):
        for t in arrivals.schedule(20.0, 100_000, random.Random(seed)):
            if t < 10:
                peak += 1
            else:
                trough += 1
    # Integral over the first half: 20 * (10 + 0.8 * 20 / pi) = 301.9; second half 98.1.
    assert peak / 30 == pytest.approx(301.9, rel=0.06)
    assert trough / 30 == pytest.approx(98.1, rel=0.12)


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"kind": "poisson"}, "arrival.rate"),
        ({"kind": "poisson", "rate": 0}, "arrival.rate"),
        ({"kind": "zigzag", "rate": 1}, "arrival.kind"),
        ({"kind": "diurnal", "rate": 1, "amplitude": 2}, "arrival"),
        ({"kind": "poisson", "rate": 1, "burst": 3}, "arrival"),
        ({"kind": "poisson", "rate": 1, "poisson": "yes"}, "arrival.poisson"),
        ("fast", "arrival"),
    ],
)
def test_bad_arrivals_name_the_key(raw: object, key: str) -> None:
    with pytest.raises(WorkloadError) as info:
        parse_arrivals(raw)
    assert info.value.key == key
