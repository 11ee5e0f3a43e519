"""Token bucket refill, charging by estimate, reconciliation and header values."""

from __future__ import annotations

import pytest

from tokenyard.policy.token_bucket import ConcurrencyCounter, TokenBucket


@pytest.mark.parametrize(
    ("spent", "elapsed", "expected_remaining"),
    [
        (60, 0.0, 0),  # empty, no time passed
        (60, 1.0, 1),  # 60/min refills 1 per second
        (60, 30.0, 30),
        (60, 120.0, 60),  # never above capacity
        (10, 5.0, 55),
    ],
)
def test_refill(spent: int, elapsed: float, expected_remaining: int) -> None:
    bucket = TokenBucket.per_minute(60, now=0.0)
    bucket.take(spent, now=0.0)
    assert bucket.remaining(now=elapsed) == expected_remaining


def test_try_take_refuses_without_charging() -> None:
    bucket = TokenBucket.per_minute(10, now=0.0)
    assert all(bucket.try_take(1, now=0.0) for _ in range(10))
    assert not bucket.try_take(1, now=0.0)
    assert bucket.remaining(now=0.0) == 0
    assert bucket.wait_for(1, now=0.0) == pytest.approx(6.0)  # 10/min = one per 6 s
    assert bucket.try_take(1, now=6.0)


def test_oversized_request_fits_only_a_full_bucket() -> None:
    bucket = TokenBucket.per_minute(1000, now=0.0)
    assert bucket.try_take(5000, now=0.0)  # full bucket: allowed, goes deep negative
    assert bucket.remaining(now=0.0) == 0
    assert not bucket.can_take(5000, now=60.0)  # still paying off the debt
    assert bucket.reset_after(now=60.0) == pytest.approx(240.0)  # -4000 at 1000/min
    assert bucket.can_take(5000, now=300.0)


@pytest.mark.parametrize(
    ("estimate", "actual", "remaining_after"),
    [
        (500, 200, 800),  # over-estimated: refund 300
        (500, 500, 500),
        (500, 900, 100),  # under-estimated: extra debit
        (500, 1800, 0),  # debit beyond the level: negative, remaining shows 0
    ],
)
def test_reconcile(estimate: int, actual: int, remaining_after: int) -> None:
    bucket = TokenBucket.per_minute(1000, now=0.0)
    assert bucket.try_take(estimate, now=0.0)
    bucket.adjust(estimate - actual, now=0.0)
    assert bucket.remaining(now=0.0) == remaining_after
    assert bucket.level == pytest.approx(1000 - actual)


def test_refund_never_exceeds_capacity() -> None:
    bucket = TokenBucket.per_minute(100, now=0.0)
    bucket.adjust(+1000, now=0.0)
    assert bucket.level == 100


def test_debt_is_paid_by_refill() -> None:
    bucket = TokenBucket.per_minute(600, now=0.0)
    bucket.take(600, now=0.0)
    bucket.adjust(-300, now=0.0)  # level -300
    assert bucket.wait_for(100, now=0.0) == pytest.approx(40.0)  # 10 per second
    assert not bucket.can_take(1, now=29.0)
    assert bucket.can_take(1, now=31.0)


def test_concurrency_counter() -> None:
    counter = ConcurrencyCounter(limit=2)
    assert counter.try_acquire() and counter.try_acquire()
    assert not counter.try_acquire()
    assert counter.remaining() == 0
    counter.release()
    assert counter.try_acquire()
    counter.release(), counter.release(), counter.release()
    assert counter.current == 0
    assert ConcurrencyCounter(limit=None).try_acquire()


def test_invalid_limit() -> None:
    with pytest.raises(ValueError):
        TokenBucket.per_minute(0, now=0.0)
