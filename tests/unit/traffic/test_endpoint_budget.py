"""EndpointBudget on the in-process SharedState: per-endpoint slots, spill-over to the pool's other endpoints,
waiting for a released slot, and giving up at the deadline."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from time import monotonic

import pytest

from tokenyard.state import open_state
from tokenyard.traffic.distributed import BudgetExhausted, EndpointBudget, LeaseKeeper


@asynccontextmanager
async def budget_of(per_endpoint: dict[str, int], default: int | None = None,
                    wait_s: float = 2.0) -> AsyncIterator[EndpointBudget]:
    state = open_state("memory")
    leases = LeaseKeeper(state, ttl_s=10.0)
    try:
        yield EndpointBudget(leases, "r1", default, per_endpoint, wait_s, fail_open=True, rng=random.Random(0))
    finally:
        await leases.close()
        await state.aclose()


def accept(name: str) -> bool:
    return True


async def test_a_full_endpoint_spills_over_to_another_of_the_pool() -> None:
    async with budget_of({"a": 1, "b": 2}) as budget:
        got = [await budget.acquire("a", lambda: ["a", "b"], accept, None) for _ in range(3)]
        assert [name for name, _ in got] == ["a", "b", "b"]
        assert all(holder is not None for _, holder in got)
        assert len({holder for _, holder in got}) == 3  # one holder per attempt


async def test_an_endpoint_the_claim_refuses_is_skipped_and_its_slot_given_back() -> None:
    async with budget_of({"a": 1, "b": 1, "c": 1}) as budget:
        await budget.acquire("a", lambda: [], accept, None)
        name, _ = await budget.acquire("a", lambda: ["b", "c"], lambda n: n != "b", None)
        assert name == "c"
        await asyncio.sleep(0.01)  # the refused lease on b is released in the background
        name, _ = await budget.acquire("b", lambda: [], accept, None)
        assert name == "b"


async def test_an_endpoint_without_a_budget_is_unlimited() -> None:
    async with budget_of({"a": 1}) as budget:
        assert await budget.acquire("free", lambda: [], accept, None) == ("free", None)
        assert budget.limit("free") is None and budget.limit("a") == 1


async def test_a_waiter_gets_the_slot_when_it_is_released() -> None:
    async with budget_of({}, default=1) as budget:
        name, holder = await budget.acquire("a", lambda: [], accept, None)
        assert holder is not None
        waiter = asyncio.create_task(budget.acquire("a", lambda: [], accept, None))
        await asyncio.sleep(0.05)
        assert not waiter.done()
        budget.release(name, holder)
        assert (await asyncio.wait_for(waiter, 1.0))[0] == "a"


async def test_no_slot_before_the_deadline_is_budget_exhausted() -> None:
    async with budget_of({"a": 1}, wait_s=5.0) as budget:
        await budget.acquire("a", lambda: [], accept, None)
        started = monotonic()
        with pytest.raises(BudgetExhausted):
            await budget.acquire("a", lambda: [], accept, monotonic() + 0.1)
        assert monotonic() - started < 2.0


async def test_a_cancelled_wait_holds_no_slot() -> None:
    async with budget_of({"a": 1}) as budget:
        name, holder = await budget.acquire("a", lambda: [], accept, None)
        waiter = asyncio.create_task(budget.acquire("a", lambda: [], accept, None))
        await asyncio.sleep(0.02)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert holder is not None
        budget.release(name, holder)
        await asyncio.sleep(0.01)
        assert (await budget.acquire("a", lambda: [], accept, None))[0] == "a"
