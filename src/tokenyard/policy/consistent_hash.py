"""Consistent hashing on a ring with virtual nodes, and the bounded-load walk.

Bounded loads (Mirrokni, Thorup, Zadimoghaddam, "Consistent Hashing with Bounded Loads", 2018): every node
accepts at most ``ceil(c x (m + 1) / n)`` of the ``m`` items already placed plus the new one (weighted: its
share of the total weight). A key goes to the first node clockwise from its hash that is under its bound, so
keys stay sticky while no node gets more than ``c`` times the average. Hashes are blake2b, stable across
processes and replicas (Python's ``hash`` is salted per process).
"""

from __future__ import annotations

import bisect
import hashlib
import math
from collections.abc import Iterator, Mapping

DEFAULT_VNODES = 160
DEFAULT_LOAD_FACTOR = 1.25


def stable_hash(data: str | bytes) -> int:
    """A 64-bit hash that is the same in every process and on every machine."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    return int.from_bytes(hashlib.blake2b(raw, digest_size=8).digest(), "big")


class HashRing:
    """Nodes placed on a 64-bit ring ``vnodes x weight`` times each (at least once for a positive weight).

    Adding or removing one of ``n`` equal nodes moves only about ``1/n`` of the keys.
    """

    def __init__(self, weights: Mapping[str, float], vnodes: int = DEFAULT_VNODES) -> None:
        if vnodes < 1:
            raise ValueError("vnodes must be at least 1")
        points: list[tuple[int, str]] = []
        for node, weight in weights.items():
            if weight <= 0:
                continue
            copies = max(1, round(vnodes * weight))
            points.extend((stable_hash(f"{node}#{i}"), node) for i in range(copies))
        points.sort()
        self._hashes = [h for h, _ in points]
        self._nodes = [n for _, n in points]
        self._weights = {n: w for n, w in weights.items() if w > 0}

    @property
    def nodes(self) -> frozenset[str]:
        """The nodes on the ring (positive weight)."""
        return frozenset(self._weights)

    def weight(self, node: str) -> float:
        """The node's weight (0 when not on the ring)."""
        return self._weights.get(node, 0.0)

    def walk(self, key: str | bytes) -> Iterator[str]:
        """Distinct nodes clockwise from the key's position: the owner first, then its successors."""
        if not self._hashes:
            return
        start = bisect.bisect_left(self._hashes, stable_hash(key))
        seen: set[str] = set()
        size = len(self._hashes)
        for offset in range(size):
            node = self._nodes[(start + offset) % size]
            if node not in seen:
                seen.add(node)
                yield node
                if len(seen) == len(self._weights):
                    return

    def owner(self, key: str | bytes) -> str | None:
        """The node a key maps to without load bounds."""
        return next(self.walk(key), None)


def load_bound(node_weight: float, total_weight: float, total_load: float, c: float) -> int:
    """The most items a node may hold once the new item is placed: ``ceil(c x share x (load + 1))``."""
    share = node_weight / total_weight if total_weight > 0 else 0.0
    return max(1, math.ceil(c * share * (total_load + 1)))


def bounded_walk(
    ring: HashRing,
    key: str | bytes,
    loads: Mapping[str, float],
    c: float = DEFAULT_LOAD_FACTOR,
    capacity: Mapping[str, float] | None = None,
) -> Iterator[str]:
    """Nodes in ring order for ``key``, skipping those at or over their bound; the first is the choice.

    ``loads`` holds each node's current load (for example in-flight requests); nodes absent count 0.
    ``capacity`` optionally overrides the weights the bounds are shared by (for example weights scaled by slow
    start) without moving the ring. Since ``c > 1`` some node is always under its bound.
    """
    if c <= 1.0:
        raise ValueError("the load factor c must be greater than 1")
    shares = {n: (capacity.get(n, 0.0) if capacity is not None else ring.weight(n)) for n in ring.nodes}
    total_weight = sum(shares.values())
    total_load = sum(loads.get(n, 0.0) for n in ring.nodes)
    for node in ring.walk(key):
        if loads.get(node, 0.0) < load_bound(shares[node], total_weight, total_load, c):
            yield node


def bounded_owner(
    ring: HashRing,
    key: str | bytes,
    loads: Mapping[str, float],
    c: float = DEFAULT_LOAD_FACTOR,
    capacity: Mapping[str, float] | None = None,
) -> str | None:
    """The first node clockwise from ``key`` that is under its load bound (None on an empty ring)."""
    return next(bounded_walk(ring, key, loads, c, capacity), None)
