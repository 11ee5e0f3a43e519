"""MemoryState specifics with an injected clock: memory bounds, sweeping, TTLs without sleeping."""

from __future__ import annotations

import pytest

from tokenyard.state import MemoryState, open_state
from tokenyard.state.periods import period_end, period_id


class FakeClock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def test_kv_is_bounded_by_bytes_with_lru_eviction() -> None:
    state = MemoryState(max_bytes=300)
    for n in range(3):
        await state.set(f"k{n}", b"x" * 100)
    assert await state.get("k0") is not None  # touch: k1 becomes least recently used
    await state.set("k3", b"y" * 100)
    assert await state.get("k1") is None
    assert await state.get("k0") is not None and await state.get("k3") is not None
    await state.append("list", b"z" * 150, max_len=10)
    assert sum([await state.get(f"k{n}") is not None for n in range(4)]) == 1


async def test_ttls_and_leases_follow_the_injected_clock() -> None:
    clock = FakeClock()
    state = MemoryState(clock=clock)
    await state.set("k", b"v", ttl_s=10)
    assert await state.acquire_lease("ep", "h", 1, ttl_s=10)
    clock.now += 9.9
    assert await state.get("k") == b"v" and await state.lease_count("ep") == 1
    clock.now += 0.2
    assert await state.get("k") is None and await state.lease_count("ep") == 0


async def test_bucket_uses_the_clock_when_now_is_omitted() -> None:
    clock = FakeClock()
    state = MemoryState(clock=clock)
    assert (await state.take("b", 2, rate_per_s=1, burst=2)).allowed
    assert not (await state.take("b", 1, rate_per_s=1, burst=2)).allowed
    clock.now += 1
    assert (await state.take("b", 1, rate_per_s=1, burst=2)).allowed


async def test_sweep_drops_expired_state() -> None:
    clock = FakeClock()
    state = MemoryState(clock=clock)
    await state.take("b", 1, rate_per_s=1, burst=2)
    await state.window_hit("w", 5, 1.0)
    await state.acquire_lease("ep", "h", 1, 1.0)
    await state.set("k", b"v", ttl_s=1)
    clock.now += 10_000
    state._sweep(clock.now)
    assert not state._buckets and not state._windows and not state._leases and not state._kv
    assert (await state.health()).detail.startswith("0 keys, 0 bytes")


def test_periods_are_utc_days_and_months() -> None:
    now = 1_800_000_000.0  # 2027-01-15T08:00:00Z
    assert period_id("day", now) == "2027-01-15"
    assert period_id("month", now) == "2027-01"
    assert period_end("day", now) == 1_800_057_600.0
    assert period_end("month", 1_796_083_200.0 + 5) == 1_798_761_600.0  # Dec 2026 ends 2027-01-01
    with pytest.raises(ValueError, match="period"):
        period_id("week", now)  # type: ignore[arg-type]


def test_open_state_rejects_unknown_urls() -> None:
    with pytest.raises(ValueError, match="memory"):
        open_state("postgres://x")
    assert isinstance(open_state("memory"), MemoryState)
