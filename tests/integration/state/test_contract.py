"""The SharedState contract: every test runs on MemoryState and on RedisState (real redis-server)."""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime

import pytest

from tokenyard.state import BucketTake, SharedState, Subscription

T0 = 1_800_000_000.0  # a fixed epoch second: bucket and window tests pass `now` so they are deterministic


async def test_bucket_admits_burst_then_refuses_with_retry_after(state: SharedState) -> None:
    results = [await state.take("k", 1, rate_per_s=2, burst=5, now=T0) for _ in range(6)]
    assert [r.allowed for r in results] == [True] * 5 + [False]
    assert results[4].remaining == pytest.approx(0)
    assert results[5].retry_after_s == pytest.approx(0.5)
    later = await state.take("k", 3, rate_per_s=2, burst=5, now=T0 + 1.5)
    assert later.allowed and later.remaining == pytest.approx(0)


async def test_bucket_refill_is_capped_at_burst_and_refusal_consumes_nothing(state: SharedState) -> None:
    assert (await state.take("k", 4, rate_per_s=1, burst=5, now=T0)).allowed
    refused = await state.take("k", 3, rate_per_s=1, burst=5, now=T0)
    assert not refused.allowed and refused.remaining == pytest.approx(1) and refused.retry_after_s == pytest.approx(2)
    full = await state.take("k", 0, rate_per_s=1, burst=5, now=T0 + 1000)
    assert full.remaining == pytest.approx(5)


async def test_bucket_cost_above_burst_is_never_admitted(state: SharedState) -> None:
    result = await state.take("k", 10, rate_per_s=1, burst=5, now=T0)
    assert not result.allowed and math.isinf(result.retry_after_s)


async def test_adjust_debits_below_zero_and_refunds_up_to_burst(state: SharedState) -> None:
    assert (await state.take("k", 5, rate_per_s=1, burst=10, now=T0)).allowed
    await state.adjust("k", -20)  # the response used far more tokens than estimated
    owed = await state.take("k", 1, rate_per_s=1, burst=10, now=T0)
    assert not owed.allowed and owed.remaining == pytest.approx(-15) and owed.retry_after_s == pytest.approx(16)
    await state.adjust("k", 100)  # refund: capped at burst
    refunded = await state.take("k", 1, rate_per_s=1, burst=10, now=T0)
    assert refunded.allowed and refunded.remaining == pytest.approx(9)


async def test_adjust_on_an_unknown_bucket_applies_at_first_take(state: SharedState) -> None:
    await state.adjust("fresh", -3)
    result = await state.take("fresh", 1, rate_per_s=1, burst=5, now=T0)
    assert result.allowed and result.remaining == pytest.approx(1)


async def test_buckets_are_independent_per_key(state: SharedState) -> None:
    assert (await state.take("a", 1, rate_per_s=0, burst=1, now=T0)).allowed
    assert (await state.take("b", 1, rate_per_s=0, burst=1, now=T0)).allowed
    assert not (await state.take("a", 1, rate_per_s=0, burst=1, now=T0)).allowed


async def test_window_counts_up_to_limit_and_resets_next_window(state: SharedState) -> None:
    hits = [await state.window_hit("w", limit=3, window_s=10, now=T0 + 2) for _ in range(4)]
    assert [h.allowed for h in hits] == [True, True, True, False]
    assert [h.hits for h in hits] == [1, 2, 3, 3]
    assert hits[0].reset_after_s == pytest.approx(8)
    assert not (await state.window_hit("w", limit=3, window_s=10, cost=1, now=T0 + 9.9)).allowed
    fresh = await state.window_hit("w", limit=3, window_s=10, cost=2, now=T0 + 10)
    assert fresh.allowed and fresh.hits == 2


async def test_budget_consumes_until_limit_per_day_and_resets_next_day(state: SharedState) -> None:
    day = datetime(2026, 11, 23, 23, 0, tzinfo=UTC).timestamp()
    assert (await state.consume_budget("t", 60, 100, "day", now=day)).used == 60
    refused = await state.consume_budget("t", 50, 100, "day", now=day)
    assert not refused.allowed and refused.used == 60 and refused.remaining == 40
    exact = await state.consume_budget("t", 40, 100, "day", now=day)
    assert exact.allowed and exact.remaining == 0
    forced = await state.consume_budget("t", 30, 100, "day", now=day, force=True)
    assert forced.allowed and forced.used == 130 and forced.remaining == 0
    refund = await state.consume_budget("t", -50, 100, "day", now=day, force=True)
    assert refund.used == 80
    tomorrow = await state.consume_budget("t", 100, 100, "day", now=day + 3600)
    assert tomorrow.allowed and tomorrow.used == 100


async def test_budget_month_spans_days(state: SharedState) -> None:
    first = datetime(2026, 11, 1, tzinfo=UTC).timestamp()
    await state.consume_budget("m", 70, 100, "month", now=first)
    assert not (await state.consume_budget("m", 40, 100, "month", now=first + 20 * 86400)).allowed
    assert (await state.consume_budget("m", 40, 100, "month", now=first + 30 * 86400)).allowed  # December


async def test_leases_limit_holders_and_release_frees_a_slot(state: SharedState) -> None:
    assert await state.acquire_lease("ep", "a", limit=2, ttl_s=30)
    assert await state.acquire_lease("ep", "b", limit=2, ttl_s=30)
    assert not await state.acquire_lease("ep", "c", limit=2, ttl_s=30)
    assert await state.acquire_lease("ep", "a", limit=2, ttl_s=30)  # idempotent for a live holder
    assert await state.lease_count("ep") == 2
    assert await state.release_lease("ep", "a")
    assert not await state.release_lease("ep", "a")
    assert await state.acquire_lease("ep", "c", limit=2, ttl_s=30)
    assert await state.lease_count("ep") == 2
    assert await state.lease_count("other") == 0


async def test_leases_expire_when_not_renewed(state: SharedState) -> None:
    assert await state.acquire_lease("ep", "dying", limit=1, ttl_s=0.2)
    assert await state.acquire_lease("ep2", "alive", limit=1, ttl_s=0.2)
    assert not await state.acquire_lease("ep", "other", limit=1, ttl_s=30)
    assert await state.renew_lease("ep2", "alive", ttl_s=30)
    await asyncio.sleep(0.5)
    assert await state.lease_count("ep") == 0
    assert not await state.renew_lease("ep", "dying", ttl_s=30)
    assert await state.acquire_lease("ep", "other", limit=1, ttl_s=30)
    assert await state.lease_count("ep2") == 1


async def _next(subscription: Subscription) -> bytes:
    async with asyncio.timeout(5):
        return await anext(aiter(subscription))


async def test_publish_reaches_every_subscriber_in_order(state: SharedState) -> None:
    first = await state.subscribe("abort")
    second = await state.subscribe("abort")
    other = await state.subscribe("revoke")
    for n in range(3):
        await state.publish("abort", f"req-{n}".encode())
    assert [await _next(first) for _ in range(3)] == [b"req-0", b"req-1", b"req-2"]
    assert [await _next(second) for _ in range(3)] == [b"req-0", b"req-1", b"req-2"]
    await state.publish("revoke", b"key-1")
    assert await _next(other) == b"key-1"
    for subscription in (first, second, other):
        await subscription.aclose()


async def test_closed_subscription_ends_iteration(state: SharedState) -> None:
    subscription = await state.subscribe("c")

    async def drain() -> list[bytes]:
        return [message async for message in subscription]

    reader = asyncio.create_task(drain())
    await state.publish("c", b"one")
    await asyncio.sleep(0.2)
    await subscription.aclose()
    async with asyncio.timeout(5):
        assert await reader == [b"one"]
    await state.publish("c", b"after close")  # no subscriber left: must not fail


async def test_kv_set_get_delete_and_only_if_absent(state: SharedState) -> None:
    assert await state.get("x") is None
    assert await state.set("x", b"1")
    assert await state.get("x") == b"1"
    assert not await state.set("x", b"2", only_if_absent=True)
    assert await state.get("x") == b"1"
    assert await state.set("x", b"3")
    assert await state.get("x") == b"3"
    assert await state.delete("x")
    assert not await state.delete("x")
    assert await state.get("x") is None


async def test_kv_ttl_expires(state: SharedState) -> None:
    await state.set("short", b"v", ttl_s=0.2)
    await state.set("long", b"v", ttl_s=60)
    await state.append("list", b"a", max_len=5, ttl_s=0.2)
    await asyncio.sleep(0.5)
    assert await state.get("short") is None
    assert await state.get("long") == b"v"
    assert await state.list_range("list") == []
    assert await state.set("short", b"again", only_if_absent=True)


async def test_append_keeps_the_newest_max_len_items(state: SharedState) -> None:
    lengths = [await state.append("buf", f"e{n}".encode(), max_len=3, ttl_s=60) for n in range(5)]
    assert lengths == [1, 2, 3, 3, 3]
    assert await state.list_range("buf") == [b"e2", b"e3", b"e4"]
    assert await state.list_range("buf", 1) == [b"e3", b"e4"]
    assert await state.list_range("buf", -2, -1) == [b"e3", b"e4"]
    assert await state.list_range("buf", 0, 0) == [b"e2"]
    assert await state.list_range("missing") == []


async def test_health_reports_ok(state: SharedState) -> None:
    health = await state.health()
    assert health.ok and health.backend in ("memory", "redis")


async def test_values_above_the_size_limit_are_refused(state: SharedState) -> None:
    huge = b"x" * (8 * 1024 * 1024 + 1)
    with pytest.raises(ValueError, match="exceeds"):
        await state.set("big", huge)
    with pytest.raises(ValueError, match="exceeds"):
        await state.append("big-list", huge, max_len=1)
    assert await state.get("big") is None


async def test_take_all_charges_every_bucket_or_none(state: SharedState) -> None:
    requests = BucketTake("tenant:rpm", 1, rate_per_s=1, burst=10)
    tokens = BucketTake("tenant:tpm", 400, rate_per_s=100, burst=1000)
    first = await state.take_all([requests, tokens], now=T0)
    assert first.allowed and [b.remaining for b in first.buckets] == pytest.approx([9, 600])
    assert first.retry_after_s == 0
    second = await state.take_all([requests, tokens._replace(cost=700)], now=T0)
    assert not second.allowed
    assert [b.allowed for b in second.buckets] == [True, False]
    assert [b.remaining for b in second.buckets] == pytest.approx([9, 600])  # nothing charged
    assert second.retry_after_s == pytest.approx(1.0)
    third = await state.take_all([requests, tokens._replace(cost=700)], now=T0 + 1)
    assert third.allowed and [b.remaining for b in third.buckets] == pytest.approx([9, 0])
    assert (await state.take("tenant:rpm", 0, 1, 10, now=T0 + 1)).remaining == pytest.approx(9)  # shared with take


async def test_take_all_applies_reconciliation_and_rejects_duplicate_keys(state: SharedState) -> None:
    await state.adjust("a", -5)
    result = await state.take_all([BucketTake("a", 1, 1, 5), BucketTake("b", 1, 1, 5)], now=T0)
    assert not result.allowed and result.buckets[0].remaining == pytest.approx(0)
    assert result.buckets[1].remaining == pytest.approx(5)
    assert (await state.take_all([], now=T0)).allowed
    with pytest.raises(ValueError, match="distinct"):
        await state.take_all([BucketTake("a", 1, 1, 5), BucketTake("a", 1, 1, 5)])
