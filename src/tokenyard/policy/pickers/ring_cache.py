"""A hash ring rebuilt only when the set of endpoints or their weights change."""

from __future__ import annotations

from collections.abc import Sequence

from tokenyard.policy.consistent_hash import DEFAULT_VNODES, HashRing
from tokenyard.policy.pickers.endpoint import EndpointView


class RingCache:
    """Keeps the ring for the last seen membership; pickers call :meth:`ring` on every pick."""

    def __init__(self, vnodes: int = DEFAULT_VNODES) -> None:
        self._vnodes = vnodes
        self._key: tuple[tuple[str, float], ...] | None = None
        self._ring = HashRing({}, vnodes)

    def ring(self, endpoints: Sequence[EndpointView]) -> HashRing:
        """The ring over these endpoints by configured weight (slow start does not move keys)."""
        key = tuple(sorted((e.name, e.weight) for e in endpoints))
        if key != self._key:
            self._ring = HashRing(dict(key), self._vnodes)
            self._key = key
        return self._ring
