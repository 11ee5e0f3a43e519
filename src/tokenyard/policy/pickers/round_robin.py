"""Round-robin: each available endpoint in turn (by name order), ignoring weight and load."""

from __future__ import annotations

from collections.abc import Sequence

from tokenyard.policy.pickers.base import available
from tokenyard.policy.pickers.endpoint import EndpointView, RequestFeatures


class RoundRobinPicker:
    """Cycles through the available endpoints sorted by name; a changing set keeps the cursor position."""

    name = "round-robin"

    def __init__(self) -> None:
        self._cursor = 0

    def filter(self, candidates: Sequence[EndpointView], request: RequestFeatures) -> list[EndpointView]:
        return sorted(available(candidates), key=lambda c: c.name)

    def score(self, candidates: Sequence[EndpointView], request: RequestFeatures) -> dict[str, float]:
        ordered = sorted(candidates, key=lambda c: c.name)
        n = len(ordered)
        if n == 0:
            return {}
        start = self._cursor % n
        # The next in turn scores 1, the one after it a little less, the one just used the least.
        return {ordered[(start + k) % n].name: 1.0 - k / n for k in range(n)}

    def pick(self, candidates: Sequence[EndpointView], request: RequestFeatures) -> EndpointView | None:
        pool = self.filter(candidates, request)
        if not pool:
            return None
        chosen = pool[self._cursor % len(pool)]
        self._cursor = (self._cursor + 1) % (1 << 62)
        return chosen
