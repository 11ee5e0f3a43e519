"""Smooth weighted round-robin (nginx's algorithm): exact weight ratios, evenly interleaved.

Each pick adds every endpoint's effective weight to its running value, takes the largest and subtracts the
total from it. With weights 5, 1, 1 this yields a a b a c a a rather than a a a a a b c.
"""

from __future__ import annotations

from collections.abc import Sequence

from tokenyard.policy.pickers.base import available
from tokenyard.policy.pickers.endpoint import EndpointView, RequestFeatures


class WeightedPicker:
    """Smooth weighted round-robin over ``effective_weight`` (configured weight x slow-start factor)."""

    name = "weighted"

    def __init__(self) -> None:
        self._current: dict[str, float] = {}

    def filter(self, candidates: Sequence[EndpointView], request: RequestFeatures) -> list[EndpointView]:
        return [c for c in available(candidates) if c.effective_weight > 0]

    def score(self, candidates: Sequence[EndpointView], request: RequestFeatures) -> dict[str, float]:
        if not candidates:
            return {}
        projected = {c.name: self._current.get(c.name, 0.0) + c.effective_weight for c in candidates}
        low, high = min(projected.values()), max(projected.values())
        if high <= low:
            return dict.fromkeys(projected, 1.0)
        return {name: (value - low) / (high - low) for name, value in projected.items()}

    def pick(self, candidates: Sequence[EndpointView], request: RequestFeatures) -> EndpointView | None:
        pool = sorted(self.filter(candidates, request), key=lambda c: c.name)
        if not pool:
            return None
        names = {c.name for c in pool}
        # Forget endpoints that left the pool so a returning one starts from zero, not from a stale debt.
        for gone in [n for n in self._current if n not in names]:
            del self._current[gone]
        total = 0.0
        best: EndpointView | None = None
        for endpoint in pool:
            value = self._current.get(endpoint.name, 0.0) + endpoint.effective_weight
            self._current[endpoint.name] = value
            total += endpoint.effective_weight
            if best is None or value > self._current[best.name]:
                best = endpoint
        assert best is not None
        self._current[best.name] -= total
        return best
