"""Client-path telemetry: the HTTP protocol and TLS version each client request came in with."""

from __future__ import annotations

import ssl

from aiohttp import web
from prometheus_client import Counter

from tokenyard.telemetry.metrics import GatewayMetrics


def _tls_version(request: web.BaseRequest) -> str | None:
    if not request.secure:  # plain text (the request's scheme comes from its connection's SSL context)
        return None
    transport = request.transport
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    return ssl_object.version() if isinstance(ssl_object, ssl.SSLObject | ssl.SSLSocket) else None


def transport_labels(request: web.BaseRequest) -> tuple[str, str]:
    """``("HTTP/1.1", "TLSv1.3")``; the TLS version is ``none`` on a plain-text listener."""
    protocol = f"HTTP/{request.version.major}.{request.version.minor}"
    return protocol, _tls_version(request) or "none"


class ClientTransportCounter:
    """Counts requests in ``tokenyard_client_requests_total{protocol,tls}``, the label child of each (HTTP
    version, TLS version) pair bound once (a handful of pairs exist), not looked up per request."""

    def __init__(self, metrics: GatewayMetrics) -> None:
        self._metrics = metrics
        self._children: dict[tuple[object, str | None], Counter] = {}

    def count(self, request: web.BaseRequest) -> None:
        key = (request.version, _tls_version(request))
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self._metrics.client_requests.labels(*transport_labels(request))
        child.inc()

