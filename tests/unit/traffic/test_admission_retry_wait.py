"""``wait_to_retry``: a refused caller asks again when a slot frees (one caller per slot) or the load signal is
refreshed (all of them), and at the latest after its timeout."""

from __future__ import annotations

import asyncio
import time

from .test_admission import controller, settle, ticket


async def test_a_released_slot_wakes_one_waiting_caller() -> None:
    ctl = controller(capacity=2)
    first = await ctl.admit(ticket())
    waiting = [asyncio.create_task(ctl.wait_to_retry("chat", 30.0)) for _ in range(3)]
    await settle()
    first.release()
    await settle()
    assert sum(task.done() for task in waiting) == 1 and waiting[0].done()  # the longest waiting goes first
    ctl.signal_refreshed()  # a fresh signal: everyone may ask again
    await settle()
    assert all(task.done() for task in waiting)
    await ctl.close()


async def test_without_a_slot_or_a_signal_the_wait_ends_at_its_timeout() -> None:
    ctl = controller(capacity=1)
    started = time.monotonic()
    await ctl.wait_to_retry("chat", 0.05)
    assert time.monotonic() - started >= 0.04
    gone = asyncio.create_task(ctl.wait_to_retry("chat", 30.0))
    await settle()
    gone.cancel()  # a cancelled waiter is skipped: the next release wakes the next one
    await settle()
    lease = await ctl.admit(ticket())
    later = asyncio.create_task(ctl.wait_to_retry("chat", 30.0))
    await settle()
    lease.release()
    await settle()
    assert later.done()
    await ctl.close()
