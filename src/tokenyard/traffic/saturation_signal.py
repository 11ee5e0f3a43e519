"""Pool saturation as a live signal: scraped backend load combined with the gateway's own in-flight counts.

``SaturationSignal(endpoints, load)`` is a callable ``pool -> float`` for
``AdmissionController(saturation=...)`` (and for ``DegradeEngine.observe_saturation``). ``load(endpoint)``
returns the latest scraped sample (``upstream.scrape.LoadScraper.latest`` fits); age is judged here, so a
stale or missing sample counts as 1.0 (``policy.saturation``). ``inflight(pool, endpoint)`` returns the
gateway's own (requests, tokens) on the endpoint (``AdmissionController.endpoint_inflight`` fits); with a
``request_capacity`` / ``token_capacity`` per endpoint it raises the value as soon as a burst is sent,
before the next scrape shows it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

from tokenyard.policy.saturation import (
    InstantLoad,
    LoadSample,
    SaturationSettings,
    endpoint_saturation,
    pool_saturation,
)

InflightFn = Callable[[str, str], tuple[int, int]]


class SaturationSignal:
    def __init__(
        self,
        endpoints: Mapping[str, Sequence[str]],
        load: Callable[[str], LoadSample | None],
        *,
        inflight: InflightFn | None = None,
        request_capacity: int | None = None,
        token_capacity: int | None = None,
        settings: SaturationSettings | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.endpoints = {pool: list(names) for pool, names in endpoints.items()}
        self._load = load
        self.inflight = inflight  # settable after construction (the controller needs this signal first)
        self._request_capacity = request_capacity
        self._token_capacity = token_capacity
        self.settings = settings or SaturationSettings()
        self._clock = clock

    def endpoint(self, pool: str, endpoint: str) -> float:
        instant = None
        if self.inflight is not None and (self._request_capacity or self._token_capacity):
            requests, tokens = self.inflight(pool, endpoint)
            instant = InstantLoad(requests, tokens, self._request_capacity, self._token_capacity)
        return endpoint_saturation(self._load(endpoint), self._clock(), self.settings, instant)

    def __call__(self, pool: str) -> float:
        names = self.endpoints.get(pool, [])
        return pool_saturation([self.endpoint(pool, n) for n in names], self.settings)
