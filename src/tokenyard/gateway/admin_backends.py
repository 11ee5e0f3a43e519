"""Admin routes for the backends (admin credential required, as every ``/admin`` route).

- ``GET /admin/backends``: per pool, per endpoint, what the router knows: URL, weight, zone, the active health
  verdict, outlier ejection, circuit breaker state, slow-start factor, whether an operator drained it, whether it
  is ready for new requests, the gateway's in-flight requests and tokens on it, its admission limit, and its last
  scraped load.
- ``POST /admin/backends/{name}/drain``: no new request is routed to endpoint ``name`` (in every pool that lists
  it: each picker sees it as ejected and its permit is refused); requests already on it finish. The answer carries
  its in-flight count: poll ``GET /admin/backends`` until it reads 0 before taking the server down.
- ``POST /admin/backends/{name}/undrain``: back in rotation (warming up through slow start).

With a shared state (``state: redis://...``) a drain reaches every worker and replica sharing it and outlives
restarts (``traffic/drain_sync.py``); the Redis write failing is 503 ``shared_state_unavailable`` with nothing
changed. With ``state: memory`` it is state of the process that answered. The answer's ``shared`` says which;
its ``inflight`` is this process's. An unknown name is 404 ``backend_not_found``.
"""

from __future__ import annotations

from time import monotonic
from typing import Any

import msgspec
from aiohttp import web

from tokenyard.gateway.admin import _authorised
from tokenyard.gateway.errors import error_response
from tokenyard.gateway.services import Gateway
from tokenyard.policy.pickers.endpoint import BackendLoad
from tokenyard.state import StateUnavailable
from tokenyard.traffic.distributed import STATE_DOWN


def _json(document: Any) -> web.Response:
    return web.Response(body=msgspec.json.encode(document), content_type="application/json")


def _load(load: BackendLoad | None, now: float) -> dict[str, float] | None:
    if load is None:
        return None
    return {"running": load.running, "waiting": load.waiting, "kv_usage": round(load.kv_usage, 4),
            "age_s": round(load.age(now), 3)}


def backends_document(gw: Gateway) -> dict[str, Any]:
    """The body of ``GET /admin/backends``: ``{"pools": {pool: {"picker", "endpoints": [row, ...]}}}``."""
    traffic = gw.traffic
    limits = traffic.admission.snapshot()["pools"] if traffic.admission is not None else {}
    now = monotonic()
    pools: dict[str, Any] = {}
    for pool_name, pool in gw.pools.items():
        admitted = limits.get(pool_name, {}).get("endpoints", {})
        rows = []
        for endpoint in pool.endpoints:
            status = pool.health.status(endpoint.name)
            limit = admitted.get(endpoint.name)
            rows.append({
                "name": endpoint.name,
                "url": endpoint.url,
                "weight": endpoint.weight,
                "zone": endpoint.zone,
                "healthy": status.healthy,
                "ejected": status.ejected,
                "circuit": status.circuit.value,
                "slow_start": round(status.slow_start, 3),
                "drained": status.drained,
                "ready": status.routable and endpoint.weight > 0,
                "inflight": endpoint.inflight,
                "inflight_tokens": endpoint.inflight_tokens,
                "admission_limit": limit["limit"] if limit is not None else None,
                "load": _load(gw.router.scraped_load(endpoint.name) or traffic.scraped_load(endpoint.name), now),
            })
        pools[pool_name] = {"picker": pool.config.picker, "endpoints": rows}
    return {"pools": pools}


def add_backend_admin_routes(app: web.Application, gw: Gateway) -> None:
    async def backends(request: web.Request) -> web.Response:
        denied = _authorised(gw, request)
        if denied is not None:
            return denied
        return _json(backends_document(gw))

    async def set_drain(request: web.Request, drained: bool) -> web.Response:
        denied = _authorised(gw, request)
        if denied is not None:
            return denied
        name = request.match_info["name"]
        endpoints = [e for pool in gw.pools.values() for e in pool.endpoints if e.name == name]
        if not endpoints:
            return error_response(404, f"no backend named {name!r} (GET /admin/backends lists them)",
                                  "backend_not_found")
        if gw.drains is None:
            gw.router.drain(name, drained)
        else:
            try:
                await gw.drains.set(name, drained)
            except StateUnavailable:
                return error_response(503, "the shared state is unavailable: the drain was not changed on any "
                                      "replica; try again", STATE_DOWN)
        return _json({"name": name, "drained": drained, "inflight": endpoints[0].inflight,
                      "shared": gw.drains is not None})

    async def drain(request: web.Request) -> web.Response:
        return await set_drain(request, True)

    async def undrain(request: web.Request) -> web.Response:
        return await set_drain(request, False)

    app.router.add_get("/admin/backends", backends)
    # ``.+``: an endpoint's configured name may contain "/".
    app.router.add_post("/admin/backends/{name:.+}/drain", drain)
    app.router.add_post("/admin/backends/{name:.+}/undrain", undrain)
