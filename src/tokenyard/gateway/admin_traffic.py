"""Admin routes of the traffic layer: queues, classes and the degradation ladder (admin credential required).

- ``GET /admin/queues``: the admission snapshot (per pool: in-flight, capacity, depth by class, per-endpoint
  limits, predicted TTFT) and the pools' saturation; ``{"enabled": false}`` when admission is off.
- ``GET /admin/classes``: every class with its config, shedding tier, queue depth and degradation level.
- ``GET /admin/degradation``: level, pin, pressure, saturation. ``POST /admin/degradation`` with
  ``{"level": 0..4}`` pins the level, ``{"level": null}`` returns it to the live signals.
- ``/admin/backends``: backend state and drain (``admin_backends``).
"""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web

from tokenyard.gateway.admin import _authorised
from tokenyard.gateway.admin_backends import add_backend_admin_routes
from tokenyard.gateway.errors import error_response
from tokenyard.gateway.services import Gateway
from tokenyard.policy.degradation import MAX_LEVEL


def _json(document: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=msgspec.json.encode(document), content_type="application/json")


def add_traffic_admin_routes(app: web.Application, gw: Gateway) -> None:
    traffic = gw.traffic

    async def queues(request: web.Request) -> web.Response:
        denied = _authorised(gw, request)
        if denied is not None:
            return denied
        if traffic.admission is None:
            return _json({"enabled": False})
        snapshot = traffic.admission.snapshot()
        for name, pool in snapshot["pools"].items():
            if name in traffic.signal.endpoints:
                pool["saturation"] = round(traffic.signal(name), 4)
        return _json({"enabled": True, **snapshot})

    async def classes(request: web.Request) -> web.Response:
        denied = _authorised(gw, request)
        if denied is not None:
            return denied
        rows = {}
        for name, cls in gw.config.classes.items():
            rows[name] = {
                **msgspec.structs.asdict(cls),
                "tier": traffic.tiers[name].value,
                "queue_depth": traffic.admission.depth(name) if traffic.admission is not None else 0,
                "degradation_level": traffic.degrade.current_level(name) if traffic.degrade is not None else 0,
            }
        return _json({"default_class": gw.config.default_class, "classes": rows})

    async def degradation(request: web.Request) -> web.Response:
        denied = _authorised(gw, request)
        if denied is not None:
            return denied
        engine = traffic.degrade
        if engine is None:
            return _json({"enabled": False})
        if request.method == "POST":
            try:
                document = msgspec.json.decode(await request.read())
            except (msgspec.DecodeError, RecursionError):  # RecursionError: nested past msgspec's depth limit
                return error_response(400, "expected a JSON body {\"level\": 0..4 or null}", "invalid_json")
            level = document.get("level", "missing") if isinstance(document, dict) else "missing"
            if level is not None and (not isinstance(level, int) or isinstance(level, bool)
                                      or not 0 <= level <= MAX_LEVEL):
                return error_response(400, f"level must be an integer 0..{MAX_LEVEL} or null", "invalid_level")
            engine.pin(level)
        return _json({"enabled": True, **engine.snapshot(), "effective_level": engine.level})

    app.router.add_get("/admin/queues", queues)
    app.router.add_get("/admin/classes", classes)
    app.router.add_get("/admin/degradation", degradation)
    app.router.add_post("/admin/degradation", degradation)
    add_backend_admin_routes(app, gw)
