"""Shedding: the probabilistic curve (ADMISSION.md table), tier order and Retry-After."""

from __future__ import annotations

import pytest

from tokenyard.policy.shedding import (
    ADMITTED,
    SHED_PROBABILISTIC,
    SHED_QUEUE_FULL,
    SHED_THRESHOLD,
    ShedTier,
    decide,
    retry_after_s,
    shed_probability,
)


@pytest.mark.parametrize(
    ("s", "p"),
    [(0.0, 0.0), (0.1, 0.003), (0.127, 0.01), (0.2, 0.096), (0.32, 1.0), (2.0, 1.0)],
)
def test_probability_curve(s: float, p: float) -> None:
    assert shed_probability(s) == pytest.approx(p, abs=0.0006)


@pytest.mark.parametrize(
    ("tier", "s", "draw", "admit", "reason"),
    [
        (ShedTier.SHEDDABLE, 0.2, 0.05, False, SHED_PROBABILISTIC),
        (ShedTier.SHEDDABLE, 0.2, 0.5, True, ADMITTED),
        (ShedTier.SHEDDABLE, 0.4, 0.999, False, SHED_PROBABILISTIC),
        (ShedTier.STANDARD, 0.4, 0.0, True, ADMITTED),
        (ShedTier.STANDARD, 0.99, 0.0, True, ADMITTED),
        (ShedTier.STANDARD, 1.0, 0.999, False, SHED_THRESHOLD),
        (ShedTier.CRITICAL, 5.0, 0.0, True, ADMITTED),
    ],
)
def test_tier_decisions(tier: ShedTier, s: float, draw: float, admit: bool, reason: str) -> None:
    decision = decide(tier, s, draw=draw)
    assert (decision.admit, decision.reason) == (admit, reason)
    assert decision.status == (200 if admit else 429)


def test_shedding_order_as_saturation_rises() -> None:
    """At every saturation level, a tier is shed only if every lower tier is shed too."""
    order = [ShedTier.SHEDDABLE, ShedTier.STANDARD, ShedTier.CRITICAL]
    first_shed: dict[ShedTier, float] = {}
    for step in range(0, 301):
        s = step / 100
        for tier in order:
            if not decide(tier, s, draw=0.5).admit and tier not in first_shed:
                first_shed[tier] = s
    assert first_shed[ShedTier.SHEDDABLE] < first_shed[ShedTier.STANDARD]
    assert ShedTier.CRITICAL not in first_shed


def test_queue_cap_is_the_only_premium_refusal() -> None:
    d = decide(ShedTier.CRITICAL, 0.0, queue_depth=100, queue_cap=100)
    assert (d.admit, d.reason) == (False, SHED_QUEUE_FULL)
    assert decide(ShedTier.CRITICAL, 0.0, queue_depth=99, queue_cap=100).admit


@pytest.mark.parametrize(("backlog", "expected"), [(0.0, 1), (0.2, 1), (2.1, 3), (500.0, 60)])
def test_retry_after(backlog: float, expected: int) -> None:
    assert retry_after_s(backlog) == expected
