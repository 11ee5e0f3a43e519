"""Locality: prefer endpoints in the client's zone, spill to the others when the local ones are overloaded.

Tiers: endpoints whose ``zone`` equals the request's ``zone``, then all others. Within the chosen tier the
least-loaded endpoint wins. A tier is skipped when every endpoint in it is overloaded: its outstanding work
per unit of weight (see least-load) is at least ``spill_at``. A request without a zone uses least-load.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from tokenyard.policy.pickers.base import available
from tokenyard.policy.pickers.endpoint import EndpointView, RequestFeatures
from tokenyard.policy.pickers.least_load import LeastLoadPicker, outstanding_cost

DEFAULT_SPILL_AT = 32.0


class LocalityPicker:
    """Same zone first; remote zones only when every local endpoint is at ``spill_at`` or above."""

    name = "locality"

    def __init__(
        self, rng: random.Random, spill_at: float = DEFAULT_SPILL_AT, tokens_per_request: float = 512.0
    ) -> None:
        self._spill_at = spill_at
        self._tokens_per_request = tokens_per_request
        self._least = LeastLoadPicker(rng, tokens_per_request)

    def filter(self, candidates: Sequence[EndpointView], request: RequestFeatures) -> list[EndpointView]:
        pool = available(candidates)
        if request.zone is None:
            return pool
        local = [e for e in pool if e.zone == request.zone]
        if any(outstanding_cost(e, self._tokens_per_request) < self._spill_at for e in local):
            return local
        return pool

    def score(self, candidates: Sequence[EndpointView], request: RequestFeatures) -> dict[str, float]:
        tier = self.filter(candidates, request)
        names = {e.name for e in tier}
        rest = [e for e in candidates if e.name not in names]
        # The preferred tier maps to [0.5, 1], the rest to [0, 0.49]: a remote endpoint never outranks a local one.
        scores = {name: 0.5 + s / 2 for name, s in self._least.score(tier, request).items()}
        scores.update({name: s * 0.49 for name, s in self._least.score(rest, request).items()})
        return scores

    def pick(self, candidates: Sequence[EndpointView], request: RequestFeatures) -> EndpointView | None:
        return self._least.pick(self.filter(candidates, request), request)
