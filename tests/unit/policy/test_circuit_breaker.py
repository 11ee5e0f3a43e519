"""Circuit breaker state machine."""

from __future__ import annotations

import pytest

from tokenyard.policy.circuit_breaker import BreakerConfig, BreakerState, CircuitBreaker


def opened(now: float = 0.0, **config: float) -> CircuitBreaker:
    breaker = CircuitBreaker(BreakerConfig(failure_threshold=3, open_s=10, half_open_probes=2, success_threshold=2))
    for _ in range(3):
        assert breaker.allow(now)
        breaker.record_failure(now)
    return breaker


def test_opens_after_consecutive_failures_only() -> None:
    breaker = CircuitBreaker(BreakerConfig(failure_threshold=3))
    for outcome in ("f", "f", "s", "f", "f"):
        assert breaker.allow(0)
        breaker.record_failure(0) if outcome == "f" else breaker.record_success(0)
    assert breaker.state(0) is BreakerState.CLOSED
    breaker.record_failure(0)
    assert breaker.state(0) is BreakerState.OPEN and not breaker.allow(1)


def test_half_open_after_open_time_limits_concurrent_probes() -> None:
    breaker = opened()
    assert not breaker.allow(9.9)
    assert breaker.state(10) is BreakerState.HALF_OPEN
    assert [breaker.allow(10) for _ in range(3)] == [True, True, False]
    assert not breaker.available(10)
    breaker.record_cancelled()
    assert breaker.allow(10)


def test_half_open_closes_after_successes() -> None:
    breaker = opened()
    assert breaker.allow(10) and breaker.allow(10)
    breaker.record_success(10.5)
    assert breaker.state(10.5) is BreakerState.HALF_OPEN
    breaker.record_success(11)
    assert breaker.state(11) is BreakerState.CLOSED and breaker.closed_at == 11
    assert all(breaker.allow(11) for _ in range(10))


def test_half_open_failure_reopens() -> None:
    breaker = opened()
    assert breaker.allow(10)
    breaker.record_failure(10.2)
    assert breaker.state(10.2) is BreakerState.OPEN
    assert not breaker.allow(20.1)
    assert breaker.allow(20.2)


@pytest.mark.parametrize("kwargs", [{"failure_threshold": 0}, {"half_open_probes": 0}, {"open_s": -1.0}])
def test_invalid(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        BreakerConfig(**kwargs)  # type: ignore[arg-type]
