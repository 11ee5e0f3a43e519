"""Gradient2-style adaptive limit: table cases from ADMISSION.md, plus backoff."""

from __future__ import annotations

import math

import pytest

from tokenyard.policy.adaptive_limit import AdaptiveLimit, AdaptiveLimitSettings, gradient


def limit_at(value: float, **kw: float) -> AdaptiveLimit:
    return AdaptiveLimit(AdaptiveLimitSettings(initial_limit=value, **kw))  # type: ignore[arg-type]


def test_steady_delay_grows_by_a_fifth_of_sqrt_l() -> None:
    lim = limit_at(64)
    lim.update(0.1, inflight=64)  # first sample: long = short
    assert lim.exact_limit == pytest.approx(64 + 0.2 * math.sqrt(64))


@pytest.mark.parametrize(("long", "short", "g"), [(1, 1, 1), (1, 3, 0.5), (2, 3, 2 / 3), (3, 1, 1), (1, 0, 1)])
def test_gradient_clamp(long: float, short: float, g: float) -> None:
    assert gradient(long, short) == pytest.approx(g)


def test_rising_delay_shrinks_with_g_half() -> None:
    lim = limit_at(100)
    lim.update(0.1, inflight=100)
    before = lim.exact_limit
    lim.update(10.0, inflight=100)  # short >> long: g clamps at 0.5
    expected = 0.8 * before + 0.2 * (before * 0.5 + math.sqrt(before))
    assert lim.exact_limit == pytest.approx(expected, rel=1e-3)
    assert lim.exact_limit < before


def test_frozen_while_app_limited() -> None:
    lim = limit_at(40)
    lim.update(0.1, inflight=19)  # < L/2
    lim.update(5.0, inflight=19)
    assert lim.exact_limit == 40


@pytest.mark.parametrize(("start", "after"), [(2, 2), (10, 9), (100, 90), (3, 2)])
def test_backoff(start: float, after: float) -> None:
    lim = limit_at(start)
    assert lim.overload(now=0.0)
    assert lim.exact_limit == after


def test_backoff_once_per_interval_and_kv_trigger() -> None:
    lim = limit_at(100)
    assert lim.overload(now=0.0)
    assert not lim.overload(now=0.5)
    assert lim.exact_limit == 90
    assert not lim.observe_kv(0.94, now=2.0)
    assert lim.observe_kv(0.95, now=2.0)
    assert lim.exact_limit == 81


def test_bounds_and_sample_windowing() -> None:
    lim = limit_at(255, max_limit=256)
    lim.update(0.1, inflight=255)
    lim.update(0.1, inflight=255)
    assert lim.limit == 256
    lim = limit_at(16)
    for i in range(10):
        lim.sample(0.05, inflight=16, now=i * 0.1)  # all within the first second: no update yet
    assert lim.exact_limit == 16
    lim.sample(0.05, inflight=16, now=1.0)
    assert lim.exact_limit == pytest.approx(16 + 0.2 * 4)


def test_on_change_fires_when_the_whole_number_limit_moves_and_only_then() -> None:
    limit = AdaptiveLimit(AdaptiveLimitSettings(initial_limit=10, min_limit=1, max_limit=100, smoothing=0.2))
    moves: list[int] = []
    limit.on_change = lambda: moves.append(limit.limit)
    limit.update(0.1, 10)  # steady delay: grows by a fifth of sqrt(10) = 0.63, still 10 as a whole number
    assert moves == [] and limit.exact_limit > 10
    limit.update(0.1, 10)  # 11.26: the whole number moves
    assert moves == [11]
    limit.update(0.1, 2)  # app-limited: frozen, no call
    assert moves == [11]
    assert limit.overload(now=100.0)
    assert moves == [11, limit.limit] and limit.limit < 11
