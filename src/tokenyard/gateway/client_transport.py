"""Client-path telemetry: the HTTP protocol and TLS version each client request came in with."""

from __future__ import annotations

import ssl

from aiohttp import web

from tokenyard.telemetry.metrics import GatewayMetrics


def transport_labels(request: web.BaseRequest) -> tuple[str, str]:
    """``("HTTP/1.1", "TLSv1.3")``; the TLS version is ``none`` on a plain-text listener."""
    protocol = f"HTTP/{request.version.major}.{request.version.minor}"
    transport = request.transport
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    tls = ssl_object.version() if isinstance(ssl_object, ssl.SSLObject | ssl.SSLSocket) else None
    return protocol, tls or "none"


def count_client_transport(metrics: GatewayMetrics, request: web.BaseRequest) -> None:
    """Count one request in ``tokenyard_client_requests_total{protocol,tls}``."""
    metrics.client_requests.labels(*transport_labels(request)).inc()
