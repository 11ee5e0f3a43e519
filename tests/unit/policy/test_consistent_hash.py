"""Hash ring with virtual nodes and the bounded-load walk."""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokenyard.policy.consistent_hash import HashRing, bounded_owner, bounded_walk, load_bound, stable_hash


def test_stable_hash_is_fixed_across_processes() -> None:
    # A literal value: a salted or changed hash would reshuffle every replica's keys.
    assert stable_hash("tokenyard") == stable_hash(b"tokenyard")
    assert stable_hash("a") != stable_hash("b")
    assert 0 <= stable_hash("x") < 2**64


def test_ring_balances_equal_nodes() -> None:
    ring = HashRing({f"n{i}": 1.0 for i in range(4)})
    counts = Counter(ring.owner(f"key-{i}") for i in range(8000))
    assert all(1500 < c < 2500 for c in counts.values()), counts


def test_ring_respects_weights() -> None:
    ring = HashRing({"big": 3.0, "small": 1.0})
    counts = Counter(ring.owner(f"key-{i}") for i in range(8000))
    assert 2.3 < counts["big"] / counts["small"] < 3.9


def test_walk_yields_each_node_once_owner_first() -> None:
    ring = HashRing({"a": 1.0, "b": 1.0, "c": 1.0})
    order = list(ring.walk("k"))
    assert sorted(order) == ["a", "b", "c"] and order[0] == ring.owner("k")


def test_empty_ring_and_zero_weight() -> None:
    assert HashRing({}).owner("k") is None
    assert HashRing({"a": 0.0}).owner("k") is None
    assert HashRing({"a": 0.0, "b": 1.0}).nodes == frozenset({"b"})
    with pytest.raises(ValueError):
        HashRing({"a": 1.0}, vnodes=0)


@pytest.mark.parametrize("n", [2, 3, 5, 8])
def test_adding_a_node_moves_about_one_nth(n: int) -> None:
    before = HashRing({f"n{i}": 1.0 for i in range(n)})
    after = HashRing({f"n{i}": 1.0 for i in range(n + 1)})
    keys = [f"key-{i}" for i in range(4000)]
    moved = [k for k in keys if before.owner(k) != after.owner(k)]
    assert abs(len(moved) / len(keys) - 1 / (n + 1)) < 0.08
    assert all(after.owner(k) == f"n{n}" for k in moved)


def test_load_bound_formula() -> None:
    assert load_bound(1, 4, 0, 1.25) == 1
    assert load_bound(1, 4, 99, 1.25) == math.ceil(1.25 * 100 / 4)
    assert load_bound(2, 4, 9, 1.25) == math.ceil(1.25 * 0.5 * 10)


@pytest.mark.parametrize(("c", "nodes"), [(1.25, 4), (1.1, 7), (2.0, 3)])
def test_bounded_assignment_never_exceeds_bound(c: float, nodes: int) -> None:
    ring = HashRing({f"n{i}": 1.0 for i in range(nodes)})
    loads: Counter[str] = Counter()
    rng = random.Random(1)
    for placed in range(1, 501):
        key = "hot" if rng.random() < 0.8 else f"k{rng.random()}"
        owner = bounded_owner(ring, key, loads, c)
        assert owner is not None
        loads[owner] += 1
        assert max(loads.values()) <= math.ceil(c * placed / nodes)
    assert sum(loads.values()) == 500


def test_bounded_walk_skips_full_nodes_in_ring_order() -> None:
    ring = HashRing({"a": 1.0, "b": 1.0, "c": 1.0})
    order = list(ring.walk("k"))
    loads = {order[0]: 5.0}
    assert list(bounded_walk(ring, "k", loads)) == order[1:]
    assert bounded_owner(ring, "k", {}) == order[0]


def test_bounded_walk_capacity_override() -> None:
    ring = HashRing({"a": 1.0, "b": 1.0})
    owner = ring.owner("k")
    assert owner is not None
    # The owner warming up at capacity ~0 is full as soon as it holds one request.
    assert bounded_owner(ring, "k", {owner: 1.0}, capacity={owner: 0.01, "a" if owner == "b" else "b": 1.0}) != owner


def test_bounded_walk_rejects_c_at_most_one() -> None:
    with pytest.raises(ValueError):
        list(bounded_walk(HashRing({"a": 1.0}), "k", {}, c=1.0))


@settings(max_examples=60, deadline=None)
@given(
    nodes=st.integers(min_value=1, max_value=8),
    keys=st.lists(st.text(min_size=0, max_size=8), min_size=1, max_size=120),
    c=st.sampled_from([1.1, 1.25, 1.5, 2.0]),
)
def test_bounded_load_property(nodes: int, keys: list[str], c: float) -> None:
    """Whatever the keys (even all equal), sequential placement never exceeds ceil(c x placed / n)."""
    ring = HashRing({f"n{i}": 1.0 for i in range(nodes)}, vnodes=20)
    loads: Counter[str] = Counter()
    for placed, key in enumerate(keys, start=1):
        owner = bounded_owner(ring, key, loads, c)
        assert owner is not None
        loads[owner] += 1
        assert max(loads.values()) <= math.ceil(c * placed / nodes)
