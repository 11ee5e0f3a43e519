"""Endpoint gauges: ``tokenyard_backend_inflight`` reads the endpoint's in-flight count when metrics are collected."""

from __future__ import annotations

from tokenyard.config import config_for_upstream
from tokenyard.telemetry.metrics import GatewayMetrics
from tokenyard.upstream.pools import build_pools


def inflight(metrics: GatewayMetrics, backend: str) -> float | None:
    return metrics.registry.get_sample_value("tokenyard_backend_inflight", {"backend": backend})


def test_inflight_gauge_follows_acquire_and_release() -> None:
    metrics = GatewayMetrics()
    config = config_for_upstream("http://127.0.0.1:9/v1")
    endpoint = next(iter(build_pools(config.models, metrics).values())).endpoints[0]
    assert inflight(metrics, endpoint.name) == 0.0
    endpoint.acquire(10)
    endpoint.acquire(5)
    assert inflight(metrics, endpoint.name) == 2.0
    endpoint.release(10)
    assert inflight(metrics, endpoint.name) == 1.0
    assert f'tokenyard_backend_inflight{{backend="{endpoint.name}"}} 1.0'.encode() in metrics.render()
    endpoint.release(5)
    assert inflight(metrics, endpoint.name) == 0.0
