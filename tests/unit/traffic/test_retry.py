"""Retry decisions, failover, the shared budget and hedging (no network)."""

from __future__ import annotations

import asyncio
import random

import pytest

from tokenyard.policy.backoff import Backoff
from tokenyard.policy.retry_budget import RetryBudget
from tokenyard.traffic.health import Outcome
from tokenyard.traffic.retry import (
    AttemptError,
    AttemptFailure,
    NoEndpointAvailable,
    RequestRetries,
    RetryEngine,
    RetryPolicy,
    hedge,
    run_with_retries,
)

CONNECT = AttemptFailure(Outcome.CONNECT_ERROR)


def engine(ratio: float = 0.2, minimum: int = 3) -> RetryEngine:
    return RetryEngine(RetryBudget(ratio=ratio, min_retries=minimum), random.Random(0))


@pytest.mark.parametrize(
    ("failure", "reason"),
    [
        (AttemptFailure(Outcome.FAILURE, 502, sent_to_client=True), "response already started"),
        (AttemptFailure(Outcome.CANCELLED), "cancelled"),
        (AttemptFailure(Outcome.SUCCESS, 400), "not a failure"),
        (AttemptFailure(Outcome.FAILURE, 501), "status 501 is not retried"),
    ],
)
def test_unsafe_or_pointless_retries_are_refused(failure: AttemptFailure, reason: str) -> None:
    with engine().begin(["chat"]) as retries:
        retries.attempt_started("a")
        decision = retries.on_failure(failure)
    assert not decision.retry and decision.reason == reason


@pytest.mark.parametrize(
    "failure",
    [CONNECT, AttemptFailure(Outcome.TIMEOUT), AttemptFailure(Outcome.FAILURE, 503),
     AttemptFailure(Outcome.OVERLOADED, 429), AttemptFailure(Outcome.FAILURE)],
)
def test_retriable_failures_retry_in_same_pool_with_backoff(failure: AttemptFailure) -> None:
    policy = RetryPolicy(backoff=Backoff(base_s=0.1, cap_s=1.0, jitter=0.0))
    with engine().begin(["chat", "chat-small"], policy) as retries:
        retries.attempt_started("a")
        decision = retries.on_failure(failure)
        assert decision.retry and decision.pool == "chat" and decision.delay_s == pytest.approx(0.1)
        assert retries.tried() == {"a"}


def test_walks_the_fallback_chain_then_stops() -> None:
    policy = RetryPolicy(max_attempts=5, per_pool_attempts=2, backoff=Backoff(jitter=0.0))
    trail = []
    with engine().begin(["chat", "chat-small", "remote"], policy) as retries:
        for endpoint in ("a", "b", "c", "d", "e"):
            retries.attempt_started(endpoint)
            decision = retries.on_failure(CONNECT)
            trail.append((decision.retry, decision.pool, decision.reason))
    assert trail == [
        (True, "chat", "retry"),
        (True, "chat-small", "fail over"),
        (True, "chat-small", "retry"),
        (True, "remote", "fail over"),
        (False, None, "attempts exhausted"),
    ]


def test_failover_waits_nothing_and_pools_run_out() -> None:
    policy = RetryPolicy(max_attempts=10, per_pool_attempts=1, backoff=Backoff(base_s=5.0, cap_s=5.0))
    with engine().begin(["chat", "small"], policy) as retries:
        retries.attempt_started("a")
        first = retries.on_failure(CONNECT)
        assert first.retry and first.pool == "small" and first.delay_s == 0.0
        retries.attempt_started("b")
        assert retries.on_failure(CONNECT).reason == "pools exhausted"


def test_policy_can_forbid_failover() -> None:
    with engine().begin(["chat", "small"], RetryPolicy(failover=False, per_pool_attempts=1)) as retries:
        assert retries.fail_over() is None
        retries.attempt_started("a")
        assert retries.on_failure(CONNECT).reason == "pools exhausted"


def test_fail_over_when_pool_has_no_endpoint_takes_no_budget() -> None:
    eng = engine(minimum=0, ratio=0.0)
    with eng.begin(["chat", "small"]) as retries:
        assert retries.fail_over() == "small" and retries.pool == "small"
        assert retries.fail_over() is None
        assert eng.budget.active_retries == 0


def test_deadline_too_short_for_backoff() -> None:
    policy = RetryPolicy(backoff=Backoff(base_s=0.5, cap_s=0.5, jitter=0.0))
    with engine().begin(["chat"], policy) as retries:
        retries.attempt_started("a")
        assert retries.on_failure(CONNECT, remaining_s=0.2).reason == "deadline"


def test_budget_caps_retries_across_requests_and_is_returned() -> None:
    eng = engine(ratio=0.1, minimum=2)
    requests = [eng.begin(["chat"]) for _ in range(40)]  # limit: max(2, 0.1 x 40) = 4
    decisions = []
    for retries in requests:
        retries.attempt_started("a")
        decisions.append(retries.on_failure(CONNECT))
    assert sum(d.retry for d in decisions) == 4
    assert [d.reason for d in decisions if not d.retry] == ["retry budget exhausted"] * 36
    for retries in requests:
        retries.finish()
        retries.finish()
    assert eng.budget.active_retries == 0 and eng.budget.active_requests == 0


def test_one_request_holds_one_slot_across_its_retries() -> None:
    eng = engine(minimum=1, ratio=0.0)
    with eng.begin(["chat"], RetryPolicy(max_attempts=3, per_pool_attempts=3)) as retries:
        for endpoint in ("a", "b"):
            retries.attempt_started(endpoint)
            assert retries.on_failure(CONNECT).retry
            assert eng.budget.active_retries == 1


def test_invalid_policy_and_empty_pools() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError):
        engine().begin([])


class Attempts:
    """Attempt functions with scripted durations and results that record cancellation."""

    def __init__(self, plan: list[tuple[float, str | Exception]]) -> None:
        self.plan = plan
        self.started: list[int] = []
        self.cancelled: list[int] = []
        self.finished: list[int] = []

    async def __call__(self, index: int) -> str:
        self.started.append(index)
        delay, result = self.plan[index]
        try:
            await asyncio.sleep(delay)
        except asyncio.CancelledError:
            self.cancelled.append(index)
            raise
        self.finished.append(index)
        if isinstance(result, Exception):
            raise result
        return result


async def test_fast_first_attempt_never_hedges() -> None:
    attempts = Attempts([(0.0, "first"), (0.0, "second")])
    assert await hedge(attempts, delay_s=5.0) == "first"
    assert attempts.started == [0]


async def test_slow_first_attempt_is_hedged_and_cancelled() -> None:
    attempts = Attempts([(30.0, "slow"), (0.0, "hedge")])
    losers: list[int] = []
    assert await asyncio.wait_for(hedge(attempts, delay_s=0.01, on_loser=losers.append), 10) == "hedge"
    assert attempts.started == [0, 1] and attempts.cancelled == [0] and losers == [0]


async def test_hedge_refused_by_budget_waits_for_first() -> None:
    attempts = Attempts([(0.05, "first"), (0.0, "never")])
    assert await asyncio.wait_for(hedge(attempts, delay_s=0.001, allow=lambda: False), 10) == "first"
    assert attempts.started == [0]


async def test_failed_attempt_starts_next_and_all_failures_raise() -> None:
    attempts = Attempts([(0.0, RuntimeError("a")), (0.0, "b")])
    assert await hedge(attempts, delay_s=5.0) == "b"
    failing = Attempts([(0.0, RuntimeError("a")), (0.0, RuntimeError("b"))])
    with pytest.raises(RuntimeError, match="b"):
        await hedge(failing, delay_s=5.0)


async def test_cancelling_hedge_cancels_every_attempt() -> None:
    attempts = Attempts([(30.0, "a"), (30.0, "b")])
    task = asyncio.ensure_future(hedge(attempts, delay_s=0.01))
    while len(attempts.started) < 2:
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sorted(attempts.cancelled) == [0, 1] and attempts.finished == []


async def test_hedge_with_retry_budget() -> None:
    eng = engine(minimum=1, ratio=0.0)
    with eng.begin(["chat"]) as retries:
        attempts = Attempts([(30.0, "slow"), (0.0, "fast")])
        assert await asyncio.wait_for(hedge(attempts, 0.01, allow=retries.try_hedge), 10) == "fast"
        assert eng.budget.active_retries == 1
        assert not retries.try_hedge()
    assert eng.budget.active_retries == 0


class Fleet:
    """Scripted endpoints per pool: each name maps to the outcomes its successive attempts have."""

    def __init__(self, pools: dict[str, dict[str, list[AttemptFailure | str]]]) -> None:
        self.pools = pools
        self.sent: list[tuple[str, str]] = []
        self.slept: list[float] = []

    def choose(self, pool: str, tried: frozenset[str]) -> str | None:
        return next((name for name in sorted(self.pools[pool]) if name not in tried), None)

    async def send(self, pool: str, name: str) -> str:
        self.sent.append((pool, name))
        result = self.pools[pool][name].pop(0)
        if isinstance(result, AttemptFailure):
            raise AttemptError(result)
        return result

    async def sleep(self, delay: float) -> None:
        self.slept.append(delay)


async def drive(fleet: Fleet, retries: RequestRetries, remaining: float | None = None) -> str:
    return await run_with_retries(
        retries, fleet.choose, fleet.send, str, remaining_s=lambda: remaining, sleep=fleet.sleep
    )


async def test_run_with_retries_moves_to_next_endpoint_then_fallback_pool() -> None:
    fleet = Fleet({"chat": {"a": [CONNECT], "b": [AttemptFailure(Outcome.FAILURE, 503)]}, "small": {"c": ["ok"]}})
    policy = RetryPolicy(max_attempts=3, per_pool_attempts=2, backoff=Backoff(base_s=0.1, jitter=0.0))
    with engine().begin(["chat", "small"], policy) as retries:
        assert await drive(fleet, retries) == "ok"
    assert fleet.sent == [("chat", "a"), ("chat", "b"), ("small", "c")]
    assert fleet.slept == [pytest.approx(0.1)]  # backoff inside the pool, none for the failover


async def test_run_with_retries_fails_over_when_a_pool_is_empty() -> None:
    fleet = Fleet({"chat": {}, "small": {"c": ["ok"]}})
    with engine(minimum=0, ratio=0.0).begin(["chat", "small"]) as retries:
        assert await drive(fleet, retries) == "ok"


async def test_run_with_retries_raises_last_error_or_no_endpoint() -> None:
    unsafe = AttemptFailure(Outcome.FAILURE, 502, sent_to_client=True)
    fleet = Fleet({"chat": {"a": [unsafe], "b": ["never"]}})
    with engine().begin(["chat"]) as retries, pytest.raises(AttemptError) as info:
        await drive(fleet, retries)
    assert info.value.failure is unsafe and fleet.sent == [("chat", "a")]

    exhausted = Fleet({"chat": {"a": [CONNECT]}})
    with engine().begin(["chat"]) as retries, pytest.raises(AttemptError):
        await drive(exhausted, retries)

    with engine().begin(["chat", "small"]) as retries, pytest.raises(NoEndpointAvailable):
        await drive(Fleet({"chat": {}, "small": {}}), retries)
