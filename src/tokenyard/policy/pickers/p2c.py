"""Power of two choices on the backends' own load (scraped ``/metrics``), local in-flight when stale.

Two random candidates, the less loaded wins: nearly the balance of least-load without every gateway replica
herding onto the same "least loaded" endpoint between scrapes (Mitzenmacher).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from tokenyard.policy.pickers.base import available, normalise_inverse
from tokenyard.policy.pickers.endpoint import EndpointView, RequestFeatures
from tokenyard.policy.pickers.least_load import outstanding_cost

# A waiting request costs more than a running one: it has not even started prefill.
WAITING_WEIGHT = 2.0


def backend_cost(endpoint: EndpointView, now: float, stale_after_s: float, tokens_per_request: float) -> float:
    """Load of one endpoint: scraped queue depth when fresh, else the gateway's own in-flight count.

    Fresh: ``max(running + 2 x waiting, inflight requests) + kv_usage`` per unit of weight; the gateway's
    in-flight count is never older than a scrape, and KV usage breaks ties towards the emptier cache.
    """
    load = endpoint.load
    if load is None or load.age(now) > stale_after_s:
        return outstanding_cost(endpoint, tokens_per_request)
    queue = max(load.running + WAITING_WEIGHT * load.waiting, float(endpoint.inflight_requests))
    return (queue + load.kv_usage) / max(endpoint.effective_weight, 1e-9)


class PowerOfTwoPicker:
    """Samples two distinct available endpoints with the RNG and takes the cheaper (tie: the first drawn)."""

    name = "p2c"

    def __init__(
        self,
        rng: random.Random,
        clock: Callable[[], float],
        stale_after_s: float = 2.0,
        tokens_per_request: float = 512.0,
    ) -> None:
        self._rng = rng
        self._clock = clock
        self._stale_after_s = stale_after_s
        self._tokens_per_request = tokens_per_request

    def _cost(self, endpoint: EndpointView, now: float) -> float:
        return backend_cost(endpoint, now, self._stale_after_s, self._tokens_per_request)

    def filter(self, candidates: Sequence[EndpointView], request: RequestFeatures) -> list[EndpointView]:
        return available(candidates)

    def score(self, candidates: Sequence[EndpointView], request: RequestFeatures) -> dict[str, float]:
        now = self._clock()
        return normalise_inverse({c.name: self._cost(c, now) for c in candidates})

    def pick(self, candidates: Sequence[EndpointView], request: RequestFeatures) -> EndpointView | None:
        pool = self.filter(candidates, request)
        if len(pool) <= 1:
            return pool[0] if pool else None
        first, second = self._rng.sample(pool, 2)
        now = self._clock()
        return second if self._cost(second, now) < self._cost(first, now) else first
