"""Pools of upstream endpoints: which endpoints serve a model, their in-flight counts, health and picker.

An ``Endpoint`` is shared by every pool that lists its URL (one in-flight count, one pair of gauges); each
``Pool`` has its own ``PoolHealth`` (active checks, outlier ejection, circuit breakers, slow start) and its own
picker (``models.<name>.picker``). The router (``tokenyard.traffic.router``) drives both.
"""

from __future__ import annotations

from tokenyard.config import EndpointConfig, ModelConfig
from tokenyard.config.routing import RoutingConfig
from tokenyard.policy.circuit_breaker import BreakerConfig
from tokenyard.policy.outlier import OutlierConfig
from tokenyard.policy.pickers.base import Picker
from tokenyard.policy.pickers.endpoint import BackendLoad, EndpointView
from tokenyard.policy.pickers.registry import PickerOptions, create_picker
from tokenyard.policy.slow_start import SlowStart
from tokenyard.telemetry.metrics import GatewayMetrics
from tokenyard.traffic.health import HealthConfig, PoolHealth


class Endpoint:
    """One upstream server. ``url`` is its base URL including ``/v1``; ``inflight``/``inflight_tokens`` count
    the gateway's open requests to it (and their estimated tokens). ``up`` mirrors ``tokenyard_backend_up``."""

    __slots__ = ("_inflight_gauge", "_places", "_up_gauge", "_view", "inflight", "inflight_tokens", "name", "up",
                 "url", "weight", "zone")

    def __init__(self, config: EndpointConfig, metrics: GatewayMetrics) -> None:
        self.name = config.name or config.url
        self.url = config.url.rstrip("/")
        self.weight = config.weight
        self.zone = config.zone
        self.up = True
        self.inflight = 0
        self.inflight_tokens = 0
        self._view: EndpointView | None = None  # the last view, while nothing in it changed
        self._places: list[tuple[list[EndpointView], int]] = []  # where pools list this endpoint's view
        self._up_gauge = metrics.backend_up.labels(self.name)
        self._inflight_gauge = metrics.backend_inflight.labels(self.name)
        self._up_gauge.set(1)
        # Read when the metrics are collected, not updated twice per request.
        self._inflight_gauge.set_function(self._inflight_now)

    def set_up(self, up: bool) -> None:
        """Set ``tokenyard_backend_up`` (1: routable in at least one of its pools)."""
        if up != self.up:
            self.up = up
            self._up_gauge.set(1 if up else 0)

    def _inflight_now(self) -> float:
        return float(self.inflight)

    def acquire(self, tokens: int = 0) -> None:
        self.inflight += 1
        self.inflight_tokens += tokens
        self._changed()

    def release(self, tokens: int = 0) -> None:
        self.inflight -= 1
        self.inflight_tokens -= tokens
        self._changed()

    def list_in(self, views: list[EndpointView]) -> None:
        """Append this endpoint's view to a pool's list, and keep it current there."""
        self._places.append((views, len(views)))
        views.append(self.view(None))

    def _changed(self) -> None:
        self._view = None
        if self._places:
            view = self.view(None)
            for views, index in self._places:
                views[index] = view

    def view(self, load: BackendLoad | None) -> EndpointView:
        """This endpoint as a picker sees it (health fields are filled in by ``PoolHealth.views``).

        Requests to a pool whose picker reads scraped load ask every endpoint for a view, and most endpoints have
        not changed since the last request: the view is kept until the in-flight counts or the scraped load change.
        """
        view = self._view
        if view is None or view.load is not load:
            view = self._view = EndpointView(
                name=self.name, url=self.url, weight=float(self.weight), zone=self.zone,
                inflight_requests=self.inflight, inflight_tokens=self.inflight_tokens, load=load)
        return view


def health_config(routing: RoutingConfig) -> HealthConfig:
    """The ``routing`` section's health, outlier, breaker and slow-start settings as the engine's config."""
    h, o, b, s = routing.health, routing.outlier, routing.breaker, routing.slow_start
    return HealthConfig(
        interval_s=h.interval_ms / 1000.0, timeout_s=h.timeout_ms / 1000.0,
        unhealthy_threshold=h.unhealthy_threshold, healthy_threshold=h.healthy_threshold,
        outlier=OutlierConfig(consecutive_failures=o.consecutive_failures, base_ejection_s=o.base_ejection_ms / 1000.0,
                              max_ejection_s=o.max_ejection_ms / 1000.0, max_ejected_share=o.max_ejected_share,
                              latency_factor=o.latency_factor, latency_margin_s=o.latency_margin_ms / 1000.0),
        breaker=BreakerConfig(failure_threshold=b.failure_threshold, open_s=b.open_ms / 1000.0,
                              half_open_probes=b.half_open_probes, success_threshold=b.success_threshold),
        slow_start=SlowStart(window_s=s.window_ms / 1000.0, floor=s.floor, aggression=s.aggression),
    )


class Pool:
    """The endpoints serving one configured model name, with the pool's health and picker.

    ``known_models`` is set for the pass-through pool (``*``) from the upstreams' ``GET /v1/models``: the model
    names it accepts (None: any name, used when no upstream could be asked at start).
    """

    __slots__ = ("by_name", "config", "endpoints", "health", "known_models", "name", "picker", "views")

    def __init__(self, name: str, config: ModelConfig, endpoints: list[Endpoint], health: PoolHealth,
                 picker: Picker) -> None:
        self.name = name
        self.config = config
        self.endpoints = endpoints
        self.by_name = {e.name: e for e in endpoints}
        # Every endpoint's current view (no scraped load), kept current by the endpoints as their in-flight counts
        # change: a request reads it whole instead of asking each endpoint. Read it; never change it.
        self.views: list[EndpointView] = []
        for endpoint in endpoints:
            endpoint.list_in(self.views)
        self.health = health
        self.picker = picker
        self.known_models: frozenset[str] | None = None

    @property
    def healthy(self) -> bool:
        """Whether some endpoint of the pool can take traffic now (``/readyz``)."""
        return any(e.weight > 0 and self.health.status(e.name).routable for e in self.endpoints)


def build_pools(models: dict[str, ModelConfig], metrics: GatewayMetrics,
                routing: RoutingConfig | None = None) -> dict[str, Pool]:
    """One ``Pool`` per configured model name; endpoints with the same URL are shared between pools."""
    routing = routing if routing is not None else RoutingConfig()
    config = health_config(routing)
    shared: dict[str, Endpoint] = {}
    pools: dict[str, Pool] = {}
    for name, model in models.items():
        endpoints = []
        for endpoint_config in model.endpoints:
            key = endpoint_config.url.rstrip("/")
            endpoint = shared.get(key)
            if endpoint is None:
                endpoint = shared[key] = Endpoint(endpoint_config, metrics)
            endpoints.append(endpoint)
        options = PickerOptions(session_header=routing.session_header)
        picker = create_picker(model.picker, options)
        pools[name] = Pool(name, model, endpoints, PoolHealth([e.name for e in endpoints], config), picker)
    return pools
