"""Admission engine: dispatch order, expiry, cancellation without leaks, shedding order, deadlines."""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Callable

import pytest

from tokenyard.policy.adaptive_limit import AdaptiveLimitSettings
from tokenyard.policy.deadline import DeadlineSettings
from tokenyard.policy.shedding import SHED_PROBABILISTIC, SHED_QUEUE_FULL, SHED_THRESHOLD, ShedTier
from tokenyard.traffic.admission import AdmissionController, AdmissionSettings, Lease
from tokenyard.traffic.admission_types import (
    CANCELLED,
    DEADLINE_EXCEEDED,
    DEADLINE_UNMEETABLE,
    DEADLINE_UNMEETABLE_AT_DISPATCH,
    DISPATCHED,
    EXPIRED,
    QUEUE_TIMEOUT,
    SHED,
    SHUTTING_DOWN,
    AdmissionEvent,
    AdmissionTicket,
    Rejected,
)

_ids = itertools.count()
BANDS = {"premium": (0, ShedTier.CRITICAL), "standard": (1, ShedTier.STANDARD), "batch": (2, ShedTier.SHEDDABLE)}


def ticket(klass: str = "standard", tenant: str = "t", **kw: object) -> AdmissionTicket:
    band, tier = BANDS[klass]
    fields: dict[str, object] = {"queue_timeout_s": 30.0, "prompt_tokens": 100, "max_tokens": 100}
    fields.update(kw)
    return AdmissionTicket(request_id=f"r{next(_ids)}", tenant=tenant, klass=klass, priority=band, pool="chat",
                           tier=tier, **fields)  # type: ignore[arg-type]


def controller(capacity: int = 1, *, events: list[AdmissionEvent] | None = None,
               saturation: Callable[[str], float] | None = None, clock: Callable[[], float] | None = None,
               **kw: object) -> AdmissionController:
    limits = AdaptiveLimitSettings(initial_limit=capacity, min_limit=1, max_limit=capacity)
    settings = AdmissionSettings(limits=limits, **kw)  # type: ignore[arg-type]
    extra = {"clock": clock} if clock else {}
    return AdmissionController(settings, saturation=saturation, on_event=events.append if events is not None
                               else None, **extra)  # type: ignore[arg-type]


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_dispatch_release_and_snapshot() -> None:
    ctl = controller(capacity=2)
    a = await ctl.admit(ticket())
    b = await ctl.admit(ticket())
    waiting = asyncio.create_task(ctl.admit(ticket("batch")))
    await settle()
    snap = ctl.snapshot()
    assert snap["pools"]["chat"]["inflight"] == 2
    assert snap["pools"]["chat"]["capacity"] == 2
    assert snap["depth"] == {"batch": 1}
    a.release()
    a.release()  # idempotent
    c = await asyncio.wait_for(waiting, 5)
    assert ctl.snapshot()["pools"]["chat"]["inflight"] == 2
    async with c:
        pass
    b.release()
    assert ctl.snapshot()["pools"]["chat"]["inflight"] == 0


async def test_strict_priority_order_on_release() -> None:
    ctl = controller(capacity=1)
    holder = await ctl.admit(ticket())
    order: list[str] = []

    async def wait(t: AdmissionTicket) -> None:
        lease = await ctl.admit(t)
        order.append(t.klass)
        lease.release()

    tasks = [asyncio.create_task(wait(ticket(k))) for k in ("batch", "standard", "premium", "standard")]
    await settle()
    holder.release()
    await asyncio.wait_for(asyncio.gather(*tasks), 5)
    assert order == ["premium", "standard", "standard", "batch"]


async def test_queue_ttl_expiry_never_dispatches() -> None:
    events: list[AdmissionEvent] = []
    ctl = controller(capacity=1, events=events)
    holder = await ctl.admit(ticket())
    t = ticket("batch", queue_timeout_s=0.05)
    with pytest.raises(Rejected) as info:
        await asyncio.wait_for(ctl.admit(t), 5)  # the expiry timer fires; nothing is released
    assert (info.value.reason, info.value.status) == (QUEUE_TIMEOUT, 503)
    assert info.value.retry_after_s is not None and info.value.retry_after_s >= 1
    holder.release()
    assert [e.kind for e in events if e.request_id == t.request_id] == [EXPIRED]
    assert ctl.snapshot()["depth"] == {} and ctl.snapshot()["pools"]["chat"]["inflight"] == 0


async def test_client_deadline_expiry_is_504() -> None:
    ctl = controller(capacity=1)
    holder = await ctl.admit(ticket())
    with pytest.raises(Rejected) as info:
        await asyncio.wait_for(ctl.admit(ticket("premium", deadline_s=0.05)), 5)
    assert (info.value.reason, info.value.status) == (DEADLINE_EXCEEDED, 504)
    holder.release()


async def test_cancel_while_queued_leaves_the_queue() -> None:
    events: list[AdmissionEvent] = []
    ctl = controller(capacity=1, events=events)
    holder = await ctl.admit(ticket())
    t = ticket()
    task = asyncio.create_task(ctl.admit(t))
    await settle()
    assert ctl.depth("standard") == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert ctl.depth("standard") == 0
    assert events[-1].kind == CANCELLED
    holder.release()
    assert ctl.snapshot()["pools"]["chat"]["inflight"] == 0
    assert not any(e.kind == DISPATCHED and e.request_id == t.request_id for e in events)


async def test_cancel_after_grant_releases_the_lease() -> None:
    ctl = controller(capacity=1)
    holder = await ctl.admit(ticket())
    task = asyncio.create_task(ctl.admit(ticket()))
    await settle()
    holder.release()  # grants the slot to the waiter, which has not resumed yet
    assert ctl.snapshot()["pools"]["chat"]["inflight"] == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert ctl.snapshot()["pools"]["chat"]["inflight"] == 0
    again = await asyncio.wait_for(ctl.admit(ticket()), 5)
    again.release()


async def test_release_between_cancel_and_cleanup_skips_the_cancelled_waiter() -> None:
    events: list[AdmissionEvent] = []
    ctl = controller(capacity=1, events=events)
    holder = await ctl.admit(ticket())
    cancelled = asyncio.create_task(ctl.admit(ticket()))
    nxt = ticket()
    follower = asyncio.create_task(ctl.admit(nxt))
    await settle()
    cancelled.cancel()  # its future is cancelled now; its cleanup runs only when the task next runs
    holder.release()  # the slot must skip the cancelled waiter and go to the follower
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    lease = await asyncio.wait_for(follower, 5)
    assert lease.ticket.request_id == nxt.request_id
    assert ctl.snapshot()["pools"]["chat"]["inflight"] == 1
    lease.release()
    assert ctl.snapshot()["pools"]["chat"]["inflight"] == 0 and ctl.snapshot()["depth"] == {}
    assert sum(e.kind == CANCELLED for e in events) == 1


async def test_cancellation_storm_leaks_nothing() -> None:
    for round_ in range(5):
        await _storm(round_)


async def _storm(seed: int) -> None:
    ctl = controller(capacity=3)
    tasks = []
    for i in range(60 + seed):
        async def use(i: int = i) -> None:
            async with await ctl.admit(ticket(("premium", "standard", "batch")[i % 3], tenant=f"t{i % 4}")):
                await asyncio.sleep(0.001 * (i % 5))
        tasks.append(asyncio.create_task(use()))
    rng = random.Random(seed)
    for _ in range(6):  # cancel at several moments: queued, just granted, inside the body
        await asyncio.sleep(rng.choice([0, 0.001, 0.002]))
        for task in rng.sample(tasks, 6):
            task.cancel()
    results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 10)
    assert all(r is None or isinstance(r, asyncio.CancelledError) for r in results), results
    snap = ctl.snapshot()
    assert snap["pools"]["chat"]["inflight"] == 0 and snap["depth"] == {}


@pytest.mark.parametrize(
    ("s", "outcomes"),
    [
        (0.0, {"batch": True, "standard": True, "premium": True}),
        (0.5, {"batch": False, "standard": True, "premium": True}),
        (1.2, {"batch": False, "standard": False, "premium": True}),
    ],
)
async def test_shedding_order(s: float, outcomes: dict[str, bool]) -> None:
    events: list[AdmissionEvent] = []
    ctl = controller(capacity=10, events=events, saturation=lambda _pool: s)
    for klass, admitted in outcomes.items():
        if admitted:
            (await ctl.admit(ticket(klass))).release()
        else:
            with pytest.raises(Rejected) as info:
                await ctl.admit(ticket(klass))
            assert info.value.status == 429 and info.value.retry_after_s is not None
            assert info.value.reason == (SHED_PROBABILISTIC if klass == "batch" else SHED_THRESHOLD)
    assert sum(e.kind == SHED for e in events) == sum(not v for v in outcomes.values())


async def test_queue_cap_sheds_even_premium() -> None:
    ctl = controller(capacity=1, queue_caps={"premium": 1})
    holder = await ctl.admit(ticket("premium"))
    queued = asyncio.create_task(ctl.admit(ticket("premium")))
    await settle()
    with pytest.raises(Rejected) as info:
        await ctl.admit(ticket("premium"))
    assert info.value.reason == SHED_QUEUE_FULL
    holder.release()
    (await asyncio.wait_for(queued, 5)).release()


async def test_early_deadline_rejection_instead_of_waiting() -> None:
    prior = DeadlineSettings(prior_service_interval_s=0.2, prior_ttft_s=0.1)
    ctl = controller(capacity=1, deadline=prior)
    holder = await ctl.admit(ticket())
    queued = [asyncio.create_task(ctl.admit(ticket())) for _ in range(4)]
    await settle()
    # position 5 -> 5 * 0.2 + 0.1 = 1.1 s > 0.9 * 1.0 s SLO: rejected at once
    with pytest.raises(Rejected) as info:
        await ctl.admit(ticket(ttft_slo_s=1.0))
    assert (info.value.reason, info.value.status) == (DEADLINE_UNMEETABLE, 429)
    assert info.value.retry_after_s is not None
    # the same request with a generous client deadline and no SLO is queued instead
    ok = asyncio.create_task(ctl.admit(ticket(deadline_s=20.0)))
    await settle()
    assert ctl.depth("standard") == 5
    await ctl.close()
    holder.release()
    for task in [*queued, ok]:
        with pytest.raises(Rejected) as closed:
            await task
        assert closed.value.reason == SHUTTING_DOWN


async def test_recheck_at_dispatch_with_fake_clock() -> None:
    now = [100.0]
    ctl = controller(capacity=1, clock=lambda: now[0], expiry_timer=False,
                     deadline=DeadlineSettings(prior_ttft_s=0.5))
    holder = await ctl.admit(ticket())
    task = asyncio.create_task(ctl.admit(ticket(ttft_slo_s=2.0)))
    await settle()
    now[0] += 1.5  # 0.5 s of budget left, 0.5 s predicted TTFT > 0.45 allowed
    holder.release()
    with pytest.raises(Rejected) as info:
        await task
    assert info.value.reason == DEADLINE_UNMEETABLE_AT_DISPATCH


async def test_sweep_with_fake_clock() -> None:
    now = [0.0]
    ctl = controller(capacity=1, clock=lambda: now[0], expiry_timer=False)
    holder = await ctl.admit(ticket())
    task = asyncio.create_task(ctl.admit(ticket("batch", queue_timeout_s=10.0)))
    await settle()
    assert ctl.sweep() == 0
    now[0] = 10.0
    assert ctl.sweep() == 1
    with pytest.raises(Rejected):
        await task
    holder.release()


async def test_endpoint_limits_and_backoff() -> None:
    now = [0.0]
    ctl = AdmissionController(AdmissionSettings(limits=AdaptiveLimitSettings(initial_limit=10, min_limit=2)),
                              clock=lambda: now[0])
    ctl.set_endpoints("chat", ["a", "b"])
    assert ctl.snapshot()["pools"]["chat"]["capacity"] == 20
    lease: Lease = await ctl.admit(ticket())
    lease.bind_endpoint("a")
    assert ctl.snapshot()["pools"]["chat"]["endpoints"]["a"] == {"limit": 10, "inflight": 1}
    lease.record_overload()
    assert ctl.snapshot()["pools"]["chat"]["endpoints"]["a"]["limit"] == 9
    ctl.observe_kv("chat", "b", 0.97)
    assert ctl.snapshot()["pools"]["chat"]["capacity"] == 18
    lease.record_ttft(0.2)
    lease.settle(prompt_tokens=100, completion_tokens=50)
    lease.release()
    assert ctl.snapshot()["pools"]["chat"]["endpoints"]["a"]["inflight"] == 0


async def test_quiet_tenant_keeps_its_share_against_a_flood() -> None:
    ctl = controller(capacity=1)
    holder = await ctl.admit(ticket())
    order: list[str] = []

    async def use(t: AdmissionTicket) -> None:
        lease = await ctl.admit(t)
        order.append(t.tenant)
        await asyncio.sleep(0)
        lease.release()

    tasks = [asyncio.create_task(use(ticket(tenant="flood", prompt_tokens=2000))) for _ in range(40)]
    await settle()
    tasks += [asyncio.create_task(use(ticket(tenant="quiet", prompt_tokens=2000))) for _ in range(10)]
    await settle()
    holder.release()
    await asyncio.wait_for(asyncio.gather(*tasks), 10)
    assert order.count("quiet") == 10
    # arrived after 40 flood requests, yet all of quiet's requests are served within the first 22
    assert max(i for i, tenant in enumerate(order) if tenant == "quiet") < 22


async def test_capacity_follows_every_limit_that_moves() -> None:
    """The pool's capacity is cached (read on every request); each way a limit moves must show in it."""
    ctl = AdmissionController(AdmissionSettings(limits=AdaptiveLimitSettings(
        initial_limit=2, min_limit=1, max_limit=100, interval_s=0.0, smoothing=0.5, backoff=0.5)))
    ctl.set_endpoints("chat", ["a", "b"])

    def capacity() -> int:
        snap = ctl.snapshot()["pools"]["chat"]
        assert snap["capacity"] == sum(e["limit"] for e in snap["endpoints"].values())
        return int(snap["capacity"])

    assert capacity() == 4
    leases = []
    for _ in range(3):
        lease = ctl.admit_now(ticket())
        assert lease is not None
        lease.bind_endpoint("a")  # "a" busy enough that its limit is not frozen (app-limited)
        leases.append(lease)
    for _ in range(3):  # steady TTFT: Gradient2 grows "a"
        leases[0].record_ttft(0.1)
    grown = capacity()
    assert grown > 4
    leases[0].record_overload()  # backend pushback: multiplicative decrease
    shrunk = capacity()
    assert shrunk < grown
    ctl.observe_kv("chat", "b", 0.99)  # scraped KV overload halves "b"
    assert capacity() < shrunk
    ctl.set_endpoints("chat", ["a", "b", "c"])  # a new endpoint brings its own limit
    assert capacity() > shrunk - 1
    for lease in leases:
        lease.release()


async def test_a_server_queue_moves_the_wait_into_the_gateway_where_premium_goes_first() -> None:
    """Default limits far above what the server runs: the server would queue everything first come, first
    served. Two scrapes showing its queue cut the limit to what it runs; the rest waits here, premium first."""
    now = [0.0]
    ctl = AdmissionController(AdmissionSettings(limits=AdaptiveLimitSettings(initial_limit=64, min_limit=2)),
                              clock=lambda: now[0])
    ctl.set_endpoints("chat", ["a"])
    batch = []
    for _ in range(20):
        lease = ctl.admit_now(ticket("batch"))
        assert lease is not None  # under the initial limit: straight to the server
        lease.bind_endpoint("a")
        batch.append(lease)
    ctl.observe_queue("chat", "a", running=6, waiting=14, scraped_at=0.5)
    assert ctl.snapshot()["pools"]["chat"]["capacity"] == 64  # one scrape could be a burst in transit
    now[0] = 1.0
    ctl.observe_queue("chat", "a", running=6, waiting=14, scraped_at=1.0)
    assert ctl.snapshot()["pools"]["chat"]["capacity"] == 6
    order: list[str] = []

    async def use(t: AdmissionTicket) -> None:
        lease = await ctl.admit(t)
        order.append(t.klass)
        lease.bind_endpoint("a")
        lease.release()

    waiting = [asyncio.create_task(use(ticket("batch"))) for _ in range(3)]
    await settle()
    waiting.append(asyncio.create_task(use(ticket("premium"))))
    await settle()
    assert order == []  # 20 in flight against a limit of 6: everyone new waits in the gateway
    for lease in batch:
        lease.release()
    await asyncio.wait_for(asyncio.gather(*waiting), 5)
    assert order[0] == "premium"
