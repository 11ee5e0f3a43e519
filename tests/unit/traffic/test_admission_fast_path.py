"""The arrival fast path (``admit_now``): taken when a slot is free and nobody waits, with the queue's decisions."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from itertools import count

import pytest

from tokenyard.policy.shedding import SHED_PROBABILISTIC, SheddingSettings, ShedTier, decide
from tokenyard.traffic.admission import AdmissionController
from tokenyard.traffic.admission_types import DISPATCHED, SHED, SHUTTING_DOWN, AdmissionEvent, Rejected

from .test_admission import controller, settle, ticket


def ticking() -> tuple[list[float], Callable[[], float]]:
    """A clock that moves on every read: a request that went through the queue has waited > 0."""
    reads = count()
    now = [0.0]

    def clock() -> float:
        now[0] = 100.0 + next(reads) * 0.001
        return now[0]

    return now, clock


async def test_a_free_slot_is_granted_without_the_queue() -> None:
    events: list[AdmissionEvent] = []
    _, clock = ticking()
    ctl = controller(capacity=2, events=events, clock=clock)
    lease = ctl.admit_now(ticket())
    assert lease is not None and lease.queue_wait_s == 0.0
    via_admit = await ctl.admit(ticket())  # admit takes the same path first
    assert via_admit.queue_wait_s == 0.0
    assert [(e.kind, e.queue_wait_s) for e in events] == [(DISPATCHED, 0.0), (DISPATCHED, 0.0)]
    assert ctl.snapshot()["pools"]["chat"]["inflight"] == 2
    lease.release()
    via_admit.release()
    assert ctl.snapshot()["pools"]["chat"]["inflight"] == 0


async def test_no_free_slot_goes_through_the_queue_untouched() -> None:
    events: list[AdmissionEvent] = []
    _, clock = ticking()
    ctl = controller(capacity=1, events=events, clock=clock, expiry_timer=False)
    holder = ctl.admit_now(ticket())
    assert holder is not None
    before = (ctl.snapshot(), ctl._rng.getstate(), list(events))
    assert ctl.admit_now(ticket()) is None  # declined: nothing decided, nothing changed
    assert (ctl.snapshot(), ctl._rng.getstate(), events) == before
    waiting = asyncio.create_task(ctl.admit(ticket()))
    await settle()
    assert ctl.depth("standard") == 1
    holder.release()
    lease = await asyncio.wait_for(waiting, 5)
    assert lease.queue_wait_s > 0  # dispatched from the queue on release
    lease.release()


async def test_an_arrival_does_not_jump_a_queued_request() -> None:
    # With a critical reserve a slot can be free for premium while standard requests wait: the premium arrival
    # goes through the queue (strict priority dispatches it at once), the waiting one stays queued.
    _, clock = ticking()
    ctl = controller(capacity=2, clock=clock, critical_reserve=0.5, expiry_timer=False)
    first = await ctl.admit(ticket())
    waiting = asyncio.create_task(ctl.admit(ticket()))
    await settle()
    assert ctl.depth("standard") == 1
    assert ctl.admit_now(ticket("premium")) is None
    premium = await ctl.admit(ticket("premium"))
    assert premium.queue_wait_s > 0 and ctl.depth("standard") == 1 and not waiting.done()
    first.release()
    premium.release()
    (await asyncio.wait_for(waiting, 5)).release()


async def test_the_fast_path_sheds_with_the_same_draws() -> None:
    events: list[AdmissionEvent] = []
    ctl = controller(capacity=4, events=events, saturation=lambda _pool: 0.2)
    ctl._rng = random.Random(7)
    expected_rng = random.Random(7)
    for _ in range(300):
        admit = decide(ShedTier.SHEDDABLE, 0.2, queue_depth=0, queue_cap=10_000, draw=expected_rng.random(),
                       settings=SheddingSettings()).admit
        if admit:
            lease = ctl.admit_now(ticket("batch"))
            assert lease is not None
            lease.release()
        else:
            with pytest.raises(Rejected) as info:
                ctl.admit_now(ticket("batch"))
            assert (info.value.reason, info.value.status) == (SHED_PROBABILISTIC, 429)
    shed = sum(e.kind == SHED for e in events)
    assert 0 < shed < 300 and ctl.snapshot()["pools"]["chat"]["inflight"] == 0


async def test_a_tight_deadline_with_a_free_slot_and_no_samples_is_admitted() -> None:
    # A free slot is position 0: with no TTFT learned yet nothing says the deadline will be missed (the
    # free-slot refusals are in test_admission_deadline), and the class SLO is never checked there.
    ctl = controller(capacity=1)
    lease = ctl.admit_now(ticket(deadline_s=0.001, ttft_slo_s=0.001))
    assert lease is not None
    lease.release()


async def test_closed_controller_declines_then_admit_refuses() -> None:
    ctl: AdmissionController = controller(capacity=1)
    await ctl.close()
    assert ctl.admit_now(ticket()) is None
    with pytest.raises(Rejected) as info:
        await ctl.admit(ticket())
    assert info.value.reason == SHUTTING_DOWN
