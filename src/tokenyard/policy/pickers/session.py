"""Session affinity: all requests carrying the same session header value go to the same endpoint.

The value is consistent-hashed onto the ring of available endpoints, so only the sessions of an endpoint that
leaves move (to its ring successor) and they come back when it returns. Requests without the header are spread
by least-load.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from tokenyard.policy.consistent_hash import DEFAULT_VNODES
from tokenyard.policy.pickers.base import available
from tokenyard.policy.pickers.endpoint import EndpointView, RequestFeatures
from tokenyard.policy.pickers.least_load import LeastLoadPicker
from tokenyard.policy.pickers.ring_cache import RingCache

DEFAULT_SESSION_HEADER = "x-tokenyard-session"


class SessionAffinityPicker:
    """Sticky by the value of ``header`` (default ``x-tokenyard-session``)."""

    name = "session"

    def __init__(self, rng: random.Random, header: str = DEFAULT_SESSION_HEADER, vnodes: int = DEFAULT_VNODES) -> None:
        self._header = header.lower()
        self._rings = RingCache(vnodes)
        self._fallback = LeastLoadPicker(rng)

    def filter(self, candidates: Sequence[EndpointView], request: RequestFeatures) -> list[EndpointView]:
        return available(candidates)

    def score(self, candidates: Sequence[EndpointView], request: RequestFeatures) -> dict[str, float]:
        session = request.header(self._header)
        if not session:
            return self._fallback.score(candidates, request)
        order = list(self._rings.ring(candidates).walk(session))
        return {name: 1.0 - rank / len(order) for rank, name in enumerate(order)}

    def pick(self, candidates: Sequence[EndpointView], request: RequestFeatures) -> EndpointView | None:
        pool = self.filter(candidates, request)
        session = request.header(self._header)
        if not pool or not session:
            return self._fallback.pick(pool, request)
        owner = self._rings.ring(pool).owner(session)
        return next((e for e in pool if e.name == owner), None)
