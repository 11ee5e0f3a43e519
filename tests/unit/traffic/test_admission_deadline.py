"""The client's deadline with a free slot (position 0): refused at once with 429 ``deadline_unmeetable`` when the
pool's recently learned TTFT cannot meet it (on both the fast path and ``admit``), never on priors or stale
samples, and never for the class SLO alone."""

from __future__ import annotations

import pytest

from tokenyard.policy.deadline import DeadlineSettings
from tokenyard.traffic.admission import AdmissionController
from tokenyard.traffic.admission_types import DEADLINE_UNMEETABLE, DISPATCHED, REJECTED, AdmissionEvent, Rejected

from .test_admission import controller, ticket


def taught(ttft_s: float, now: list[float], events: list[AdmissionEvent] | None = None,
           deadline: DeadlineSettings | None = None) -> AdmissionController:
    """A two-slot controller on the hand-set clock ``now`` whose pool has seen one request with ``ttft_s``."""
    ctl = controller(capacity=2, clock=lambda: now[0], expiry_timer=False, events=events,
                     deadline=deadline or DeadlineSettings())
    lease = ctl.admit_now(ticket())
    assert lease is not None
    lease.record_ttft(ttft_s)
    lease.release()
    return ctl


async def test_a_deadline_below_the_learned_ttft_is_refused_on_the_fast_path() -> None:
    now = [100.0]
    events: list[AdmissionEvent] = []
    ctl = taught(0.1, now, events)
    with pytest.raises(Rejected) as info:
        ctl.admit_now(ticket(deadline_s=0.020, arrival=now[0]))
    assert (info.value.reason, info.value.status) == (DEADLINE_UNMEETABLE, 429)
    assert info.value.retry_after_s is not None and "0.100s" in info.value.message
    assert [(e.kind, e.reason) for e in events][-1] == (REJECTED, DEADLINE_UNMEETABLE)
    assert ctl.snapshot()["pools"]["chat"]["inflight"] == 0  # nothing was dispatched


async def test_a_deadline_below_the_learned_ttft_is_refused_by_admit() -> None:
    now = [100.0]
    ctl = taught(0.1, now)
    with pytest.raises(Rejected) as info:
        await ctl.admit(ticket(deadline_s=0.020))
    assert info.value.reason == DEADLINE_UNMEETABLE


async def test_the_time_already_spent_counts_against_the_deadline() -> None:
    now = [100.0]
    ctl = taught(0.1, now)
    arrived = now[0]
    now[0] += 0.1  # 0.1 s spent in the gateway before admission: 0.05 s of a 0.15 s deadline left
    with pytest.raises(Rejected):
        ctl.admit_now(ticket(deadline_s=0.15, arrival=arrived))


async def test_a_deadline_the_learned_ttft_meets_is_admitted() -> None:
    now = [100.0]
    events: list[AdmissionEvent] = []
    ctl = taught(0.1, now, events)
    lease = ctl.admit_now(ticket(deadline_s=0.5, arrival=now[0]))  # 0.1 <= 0.9 * 0.5
    assert lease is not None and events[-1].kind == DISPATCHED
    lease.release()


async def test_the_class_slo_alone_never_refuses_a_free_slot() -> None:
    # A slow pool (learned TTFT 3 s) and a standard request whose SLO is 2 s: served, not shed.
    now = [100.0]
    ctl = taught(3.0, now)
    lease = ctl.admit_now(ticket(ttft_slo_s=2.0))
    assert lease is not None
    lease.release()
    queued_path = await ctl.admit(ticket(ttft_slo_s=2.0))
    queued_path.release()


async def test_priors_alone_never_refuse_a_free_slot() -> None:
    ctl = controller(capacity=1, deadline=DeadlineSettings(prior_ttft_s=1.0))
    lease = ctl.admit_now(ticket(deadline_s=0.020))
    assert lease is not None
    lease.release()


async def test_a_stale_ttft_does_not_refuse() -> None:
    # The pool went quiet: once its newest sample is older than ttft_max_age_s the next requests re-teach it.
    now = [100.0]
    ctl = taught(0.1, now, deadline=DeadlineSettings(ttft_max_age_s=30.0))
    now[0] += 31.0
    lease = ctl.admit_now(ticket(deadline_s=0.020, arrival=now[0]))
    assert lease is not None
    lease.release()
