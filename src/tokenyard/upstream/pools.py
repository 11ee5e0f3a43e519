"""Pools of upstream endpoints: which endpoints serve a model, their health, and a simple least-load pick.

The routing engineer's pickers (``tokenyard.policy.pickers``) plug in at ``Pool.pick``: the router only asks a
pool for "an endpoint, not one of these".
"""

from __future__ import annotations

from collections.abc import Collection

from tokenyard.config import EndpointConfig, ModelConfig
from tokenyard.telemetry.metrics import GatewayMetrics


class Endpoint:
    """One upstream server. ``url`` is its base URL including ``/v1``; ``inflight`` counts open requests."""

    __slots__ = ("_inflight_gauge", "_up_gauge", "healthy", "inflight", "name", "url", "weight")

    def __init__(self, config: EndpointConfig, metrics: GatewayMetrics) -> None:
        self.name = config.name or config.url
        self.url = config.url.rstrip("/")
        self.weight = config.weight
        self.healthy = True
        self.inflight = 0
        self._up_gauge = metrics.backend_up.labels(self.name)
        self._inflight_gauge = metrics.backend_inflight.labels(self.name)
        self._up_gauge.set(1)

    def mark(self, healthy: bool) -> None:
        if healthy != self.healthy:
            self.healthy = healthy
            self._up_gauge.set(1 if healthy else 0)

    def acquire(self) -> None:
        self.inflight += 1
        self._inflight_gauge.inc()

    def release(self) -> None:
        self.inflight -= 1
        self._inflight_gauge.dec()


class Pool:
    """The endpoints serving one configured model name.

    ``known_models`` is set for the pass-through pool (``*``) from the upstreams' ``GET /v1/models``: the model
    names it accepts (None: any name, used when no upstream could be asked at start).
    """

    __slots__ = ("_turn", "config", "endpoints", "known_models", "name")

    def __init__(self, name: str, config: ModelConfig, endpoints: list[Endpoint]) -> None:
        self.name = name
        self.config = config
        self.endpoints = endpoints
        self.known_models: frozenset[str] | None = None
        self._turn = 0

    def pick(self, exclude: Collection[Endpoint] = ()) -> Endpoint | None:
        """The healthy endpoint with the fewest requests in flight (round-robin among ties), or None.

        Endpoints with weight 0 get no new traffic. When every endpoint is unhealthy, the least loaded of the
        unhealthy ones is tried anyway only if the pool has no healthy endpoint at all and it is not excluded
        (health is passive: a recovered server is found by trying it or by the prober).
        """
        best: Endpoint | None = None
        count = len(self.endpoints)
        self._turn = (self._turn + 1) % count if count else 0
        for i in range(count):
            endpoint = self.endpoints[(self._turn + i) % count]
            if not endpoint.healthy or endpoint.weight == 0 or endpoint in exclude:
                continue
            if best is None or endpoint.inflight < best.inflight:
                best = endpoint
        return best

    @property
    def healthy(self) -> bool:
        return any(e.healthy and e.weight > 0 for e in self.endpoints)


def build_pools(models: dict[str, ModelConfig], metrics: GatewayMetrics) -> dict[str, Pool]:
    """One ``Pool`` per configured model name; endpoints with the same URL are shared between pools."""
    shared: dict[str, Endpoint] = {}
    pools: dict[str, Pool] = {}
    for name, config in models.items():
        endpoints = []
        for endpoint_config in config.endpoints:
            key = endpoint_config.url.rstrip("/")
            endpoint = shared.get(key)
            if endpoint is None:
                endpoint = shared[key] = Endpoint(endpoint_config, metrics)
            endpoints.append(endpoint)
        pools[name] = Pool(name, config, endpoints)
    return pools
