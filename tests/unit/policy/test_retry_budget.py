"""Retry budget: retries bounded by a share of active requests, with a minimum."""

from __future__ import annotations

import pytest

from tokenyard.policy.retry_budget import RetryBudget


def test_minimum_allows_retries_at_low_traffic() -> None:
    budget = RetryBudget(ratio=0.2, min_retries=3)
    budget.request_started()
    assert [budget.try_acquire() for _ in range(4)] == [True, True, True, False]
    budget.release()
    assert budget.try_acquire()


@pytest.mark.parametrize(("active", "limit"), [(0, 3), (10, 3), (20, 4), (100, 20), (1000, 200)])
def test_limit_scales_with_active_requests(active: int, limit: int) -> None:
    budget = RetryBudget(ratio=0.2, min_retries=3)
    for _ in range(active):
        budget.request_started()
    assert budget.limit() == limit
    granted = sum(budget.try_acquire() for _ in range(limit + 10))
    assert granted == limit


def test_outage_cannot_amplify_load_beyond_ratio() -> None:
    """Every one of 500 requests fails and wants a retry: only 20% get one at a time."""
    budget = RetryBudget(ratio=0.2, min_retries=3)
    for _ in range(500):
        budget.request_started()
    retries = sum(budget.try_acquire() for _ in range(500))
    assert retries == 100
    for _ in range(500):
        budget.request_finished()
    assert budget.limit() == 3 and not budget.can_retry()
    for _ in range(100):
        budget.release()
    assert budget.active_retries == 0 and budget.can_retry()


def test_counters_never_negative() -> None:
    budget = RetryBudget()
    budget.release()
    budget.request_finished()
    assert budget.active_retries == 0 and budget.active_requests == 0


def test_invalid() -> None:
    with pytest.raises(ValueError):
        RetryBudget(ratio=-0.1)
