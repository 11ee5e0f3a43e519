"""``FairQueue.dispatch_now``: the same DRR credit as ``push`` + ``pop`` on an empty queue, in one step."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokenyard.policy.fair_queue import FairQueue, FairQueueSettings, QueueEntry


def credit(q: FairQueue) -> dict[tuple[int, str], float]:
    """Every tenant's DRR credit: queued tenants' deficits and idle tenants' debts."""
    out = dict(q._debts)
    for number, band in q._bands.items():
        for name, tenant in band.tenants.items():
            out[(number, name)] = tenant.deficit
    return out


TENANTS = st.sampled_from(["a", "b", "c"])
BANDS = st.integers(min_value=0, max_value=2)
COSTS = st.floats(min_value=0, max_value=20_000, allow_nan=False)
OPS = st.one_of(
    st.tuples(st.just("solo"), TENANTS, BANDS, COSTS, st.sampled_from([0.5, 1.0, 3.0])),
    st.tuples(st.just("burst"), st.lists(st.tuples(TENANTS, BANDS, COSTS), min_size=1, max_size=5)),
    st.tuples(st.just("settle"), st.integers(min_value=0, max_value=50), COSTS),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(OPS, max_size=30), st.sampled_from([100.0, 4096.0]))
def test_dispatch_now_charges_credit_like_push_and_pop(ops: list[tuple[object, ...]], quantum: float) -> None:
    fast, slow = FairQueue(FairQueueSettings(quantum=quantum)), FairQueue(FairQueueSettings(quantum=quantum))
    served: list[tuple[QueueEntry, QueueEntry]] = []
    for i, op in enumerate(ops):
        if op[0] == "solo":
            _, tenant, band, cost, weight = op
            fields = {"tenant": tenant, "klass": f"k{band}", "band": band, "cost": cost, "now": float(i),
                      "ttl_s": 30.0, "weight": weight}
            a = fast.dispatch_now(f"s{i}", **fields)  # type: ignore[arg-type]
            slow.push(f"s{i}", **fields)  # type: ignore[arg-type]
            b = slow.pop(float(i))
            assert b is not None and (a.entry_id, a.band, a.cost) == (b.entry_id, b.band, b.cost)
            served.append((a, b))
        elif op[0] == "burst":  # several wait together: both queues are driven the ordinary way
            for j, (tenant, band, cost) in enumerate(op[1]):  # type: ignore[arg-type]
                for q in (fast, slow):
                    q.push(f"b{i}.{j}", tenant=tenant, klass=f"k{band}", band=band, cost=cost, now=float(i),
                           ttl_s=30.0)
            while (x := fast.pop(float(i))) is not None:
                y = slow.pop(float(i))
                assert y is not None and x.entry_id == y.entry_id
                served.append((x, y))
            assert slow.pop(float(i)) is None
        elif served:
            _, index, actual = op
            a, b = served[int(index) % len(served)]  # type: ignore[call-overload]
            fast.settle(a, actual)  # type: ignore[arg-type]
            slow.settle(b, actual)  # type: ignore[arg-type]
        assert credit(fast) == credit(slow)
        assert len(fast) == len(slow) == 0 and fast.depth_by_class() == slow.depth_by_class() == {}


def test_dispatch_now_needs_an_empty_queue() -> None:
    q = FairQueue()
    q.push("waiting", tenant="t", klass="k", band=1, cost=10, now=0.0, ttl_s=5.0)
    with pytest.raises(ValueError, match="empty queue"):
        q.dispatch_now("jumper", tenant="t", klass="k", band=0, cost=10, now=0.0, ttl_s=5.0)
    assert q.depth_of("k") == 1 and "jumper" not in q


def test_dispatch_now_leaves_nothing_queued() -> None:
    q = FairQueue()
    entry = q.dispatch_now("r", tenant="t", klass="k", band=1, cost=10, now=2.0, ttl_s=5.0, deadline=4.0)
    assert (entry.enqueued_at, entry.expires_at, entry.deadline, entry.alive) == (2.0, 7.0, 4.0, False)
    assert len(q) == 0 and q.depth_of("k") == 0 and q.next_expiry() is None and q.pop(3.0) is None


def test_a_solo_dispatch_pays_the_tenants_debt_like_the_queue() -> None:
    queues = [FairQueue(FairQueueSettings(quantum=100)), FairQueue(FairQueueSettings(quantum=100))]
    for q in queues:
        q.settle(q.dispatch_now("first", tenant="t", klass="k", band=1, cost=50, now=0.0, ttl_s=5.0), 1_000)
        assert credit(q) == {(1, "t"): -950}  # under-estimated by 950 tokens: a debt survives going idle
    fast, slow = queues
    fast.dispatch_now("second", tenant="t", klass="k", band=1, cost=50, now=1.0, ttl_s=5.0)
    slow.push("second", tenant="t", klass="k", band=1, cost=50, now=1.0, ttl_s=5.0)
    assert slow.pop(1.0) is not None
    assert credit(fast) == credit(slow) == {}
