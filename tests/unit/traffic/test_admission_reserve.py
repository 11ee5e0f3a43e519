"""The critical reserve: other tiers leave the last share of a pool's slots to the critical tier."""

from __future__ import annotations

import asyncio

from tests.unit.traffic.test_admission import controller, settle, ticket


async def test_standard_stops_at_the_reserve_and_premium_takes_it() -> None:
    ctl = controller(capacity=4, critical_reserve=0.25)  # 3 shared slots, 1 kept for premium
    held = [await ctl.admit(ticket()) for _ in range(3)]
    waiting = asyncio.create_task(ctl.admit(ticket()))
    await settle()
    assert not waiting.done() and ctl.depth("standard") == 1
    premium = await asyncio.wait_for(ctl.admit(ticket("premium")), 5)  # the reserved slot, at once
    assert ctl.snapshot()["pools"]["chat"]["inflight"] == 4
    premium.release()
    await settle()
    assert not waiting.done(), "a freed reserved slot is not given to standard"
    held[0].release()
    (await asyncio.wait_for(waiting, 5)).release()
    for lease in held[1:]:
        lease.release()
    assert ctl.snapshot()["pools"]["chat"]["inflight"] == 0


async def test_queued_premium_gets_a_slot_before_queued_standard() -> None:
    ctl = controller(capacity=2, critical_reserve=0.5)
    premium = [await ctl.admit(ticket("premium")) for _ in range(2)]
    standard = asyncio.create_task(ctl.admit(ticket()))
    queued_premium = asyncio.create_task(ctl.admit(ticket("premium")))
    await settle()
    premium[0].release()
    lease = await asyncio.wait_for(queued_premium, 5)
    assert not standard.done()
    premium[1].release()
    await settle()
    assert not standard.done(), "one premium still holds the shared slot"
    lease.release()
    (await asyncio.wait_for(standard, 5)).release()


async def test_no_reserve_by_default() -> None:
    ctl = controller(capacity=2)
    leases = [await asyncio.wait_for(ctl.admit(ticket("batch")), 5) for _ in range(2)]
    for lease in leases:
        lease.release()
