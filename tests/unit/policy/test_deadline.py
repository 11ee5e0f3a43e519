"""TTFT prediction and early rejection."""

from __future__ import annotations

import pytest

from tokenyard.policy.deadline import DeadlineSettings, Ewma, TtftPredictor


def test_ewma() -> None:
    e = Ewma(0.2)
    assert e.update(10) == 10
    assert e.update(20) == pytest.approx(12)
    with pytest.raises(ValueError):
        Ewma(0)


def trained(interval: float, ttft: float) -> TtftPredictor:
    p = TtftPredictor()
    now = 0.0
    p.observe_dispatch(now, backlogged=False)
    for _ in range(50):
        now += interval
        p.observe_dispatch(now, backlogged=True)
        p.observe_ttft(ttft)
    return p


@pytest.mark.parametrize(
    ("position", "budget", "ok", "predicted"),
    [
        (0, 2.0, True, 0.3),
        (10, 2.0, True, 1.3),  # 10 * 0.1 + 0.3
        (16, 2.0, False, 1.9),  # 1.9 > 2.0 * 0.9
        (15, 2.0, True, 1.8),  # exactly at budget minus slack
        (100, 60.0, True, 10.3),
    ],
)
def test_prediction(position: int, budget: float, ok: bool, predicted: float) -> None:
    p = trained(0.1, 0.3)
    verdict = p.check(position, budget)
    assert verdict.predicted_s == pytest.approx(predicted)
    assert verdict.ok is ok
    assert verdict.allowed_s == pytest.approx(budget * 0.9)


def test_idle_gaps_do_not_count_as_service_interval() -> None:
    p = trained(0.1, 0.3)
    p.observe_dispatch(1000.0, backlogged=False)  # the queue had been empty for ages
    p.observe_dispatch(1000.1, backlogged=True)
    assert p.service_interval_s == pytest.approx(0.1)


def test_no_samples_admits_with_priors() -> None:
    assert TtftPredictor().check(1000, 0.5).ok
    strict = TtftPredictor(DeadlineSettings(prior_service_interval_s=0.01, prior_ttft_s=0.2))
    assert strict.predict(10) == pytest.approx(0.3)
    assert not strict.check(100, 1.0).ok


def test_check_learned_uses_only_fresh_samples() -> None:
    p = TtftPredictor(DeadlineSettings(prior_ttft_s=5.0, ttft_max_age_s=30.0))
    assert p.check_learned(0.02, now=0.0).ok  # priors never refuse
    p.observe_ttft(0.1)  # undated: not trusted to refuse either
    assert p.check_learned(0.02, now=0.0).ok
    p.observe_ttft(0.1, now=10.0)
    verdict = p.check_learned(0.02, now=10.0)
    assert not verdict.ok and verdict.predicted_s == pytest.approx(0.1) and verdict.allowed_s == pytest.approx(0.018)
    assert p.check_learned(0.2, now=10.0).ok  # 0.1 <= 0.18
    assert p.check_learned(0.02, now=40.1).ok  # the newest sample is older than ttft_max_age_s
