"""Jittered exponential backoff."""

from __future__ import annotations

import random

import pytest

from tokenyard.policy.backoff import Backoff


@pytest.mark.parametrize(("attempt", "ceiling"), [(1, 0.025), (2, 0.05), (3, 0.1), (4, 0.2), (5, 0.25), (500, 0.25)])
def test_ceiling_doubles_up_to_cap(attempt: int, ceiling: float) -> None:
    assert Backoff().ceiling(attempt) == pytest.approx(ceiling)


def test_full_jitter_stays_in_range_and_spreads() -> None:
    backoff, rng = Backoff(), random.Random(1)
    delays = [backoff.delay(3, rng) for _ in range(1000)]
    assert all(0.0 <= d <= 0.1 for d in delays)
    assert min(delays) < 0.01 and max(delays) > 0.09


def test_partial_jitter_keeps_a_fixed_part() -> None:
    backoff, rng = Backoff(base_s=1.0, cap_s=10.0, jitter=0.2), random.Random(2)
    assert all(0.8 <= backoff.delay(1, rng) <= 1.0 for _ in range(200))
    assert Backoff(jitter=0.0).delay(2, rng) == pytest.approx(0.05)


def test_seeded_rng_is_deterministic() -> None:
    assert [Backoff().delay(2, random.Random(5)) for _ in range(3)] == [Backoff().delay(2, random.Random(5))] * 3


@pytest.mark.parametrize("kwargs", [{"base_s": -1.0}, {"multiplier": 0.5}, {"jitter": 1.5}])
def test_invalid(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Backoff(**kwargs)
