"""Slow-start weight factor."""

from __future__ import annotations

import pytest

from tokenyard.policy.slow_start import SlowStart


@pytest.mark.parametrize(
    ("returned_at", "now", "factor"),
    [(None, 5.0, 1.0), (0.0, 0.0, 0.1), (0.0, 15.0, 0.55), (0.0, 29.0, 0.1 + 0.9 * 29 / 30), (0.0, 30.0, 1.0),
     (0.0, 99.0, 1.0)],
)
def test_linear_ramp_from_floor(returned_at: float | None, now: float, factor: float) -> None:
    assert SlowStart(window_s=30, floor=0.1).factor(returned_at, now) == pytest.approx(factor)


def test_aggression_ramps_slower_at_first() -> None:
    linear, aggressive = SlowStart(aggression=1.0), SlowStart(aggression=2.0)
    assert aggressive.factor(0.0, 7.5) == pytest.approx(0.1 + 0.9 * 0.5)  # sqrt(0.25)
    assert linear.factor(0.0, 7.5) == pytest.approx(0.1 + 0.9 * 0.25)


def test_monotonic_and_window_zero_disables() -> None:
    ramp = SlowStart()
    values = [ramp.factor(10.0, 10.0 + t) for t in range(0, 35)]
    assert values == sorted(values)
    assert SlowStart(window_s=0).factor(10.0, 10.0) == 1.0


@pytest.mark.parametrize("kwargs", [{"window_s": -1.0}, {"floor": 0.0}, {"aggression": 0.0}])
def test_invalid(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        SlowStart(**kwargs)
