"""Least-load: the endpoint with the fewest outstanding requests and tokens per unit of weight."""

from __future__ import annotations

import random
from collections.abc import Sequence

from tokenyard.policy.pickers.base import ScoringPicker, normalise_inverse
from tokenyard.policy.pickers.endpoint import EndpointView, RequestFeatures


def outstanding_cost(endpoint: EndpointView, tokens_per_request: float) -> float:
    """Outstanding work in request units: requests plus tokens converted at ``tokens_per_request``.

    Divided by the effective weight so an endpoint of weight 2 (or one warming up at 0.5) takes a fair share.
    """
    work = endpoint.inflight_requests + endpoint.inflight_tokens / max(tokens_per_request, 1.0)
    return work / max(endpoint.effective_weight, 1e-9)


class LeastLoadPicker(ScoringPicker):
    """Scores 1 for the least outstanding work, 0 for the most; ties broken at random.

    ``tokens_per_request`` sets how many outstanding tokens weigh as much as one outstanding request.
    """

    name = "least-load"

    def __init__(self, rng: random.Random, tokens_per_request: float = 512.0) -> None:
        super().__init__(rng)
        self._tokens_per_request = tokens_per_request

    def score(self, candidates: Sequence[EndpointView], request: RequestFeatures) -> dict[str, float]:
        return normalise_inverse({c.name: outstanding_cost(c, self._tokens_per_request) for c in candidates})
