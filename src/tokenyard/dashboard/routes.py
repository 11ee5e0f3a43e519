"""The dashboard's HTTP side: ``GET /dashboard`` (the page), ``GET /dashboard/data.json`` (the feed) and
``GET /dashboard/assets/{name}`` (only the known files, from package data, with their content types).

``add_dashboard_routes(app, registry)`` is the one call the gateway's app assembly makes. The sampler is a task
owned by the app (started at startup, cancelled at cleanup); the ring buffer lives in the app's ``Dashboard``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from importlib import resources

import msgspec
from aiohttp import web
from prometheus_client import CollectorRegistry

from tokenyard.dashboard.feed import DashboardFeed

# The only files served: name -> content type. Anything else under /dashboard/assets/ is a 404.
ASSETS: dict[str, str] = {
    "dashboard.js": "text/javascript",
    "dashboard.css": "text/css",
}
PAGE = "index.html"
log = logging.getLogger("tokenyard.dashboard")
_NO_CACHE = {"Cache-Control": "no-store"}


class Dashboard:
    """The feed plus its sampling task and the (lazily read, then cached) static files."""

    def __init__(self, feed: DashboardFeed, clock: Callable[[], float] = time.monotonic) -> None:
        self.feed = feed
        self.clock = clock
        self._files: dict[str, bytes] = {}

    def file(self, name: str) -> bytes:
        body = self._files.get(name)
        if body is None:
            body = self._files[name] = resources.files("tokenyard.dashboard").joinpath("static", name).read_bytes()
        return body

    async def sample_forever(self) -> None:
        while True:
            try:
                self.feed.sample(self.clock())
            except Exception:  # a bad sample must not end the dashboard for the life of the gateway
                log.exception("dashboard sample failed")
            await asyncio.sleep(self.feed.interval_s)

    async def lifecycle(self, app: web.Application) -> AsyncIterator[None]:
        """``app.cleanup_ctx`` entry: sample while the app runs."""
        task = asyncio.create_task(self.sample_forever(), name="tokenyard-dashboard-sampler")
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


DASHBOARD_KEY = web.AppKey("tokenyard_dashboard", Dashboard)


def add_dashboard_routes(app: web.Application, registry: CollectorRegistry, *, interval_s: float = 1.0,
                         history_s: float = 300.0, window_s: float = 30.0) -> Dashboard:
    """Serve the dashboard of ``registry`` on ``app``; returns the app's ``Dashboard`` (also ``app[DASHBOARD_KEY]``)."""
    dash = Dashboard(DashboardFeed(registry, interval_s=interval_s, history_s=history_s, window_s=window_s))
    app[DASHBOARD_KEY] = dash

    async def page(request: web.Request) -> web.Response:
        return web.Response(body=dash.file(PAGE), content_type="text/html", charset="utf-8", headers=_NO_CACHE)

    async def data(request: web.Request) -> web.Response:
        return web.Response(body=msgspec.json.encode(dash.feed.feed()), content_type="application/json",
                            headers=_NO_CACHE)

    async def asset(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        content_type = ASSETS.get(name)
        if content_type is None:
            body = msgspec.json.encode({"error": {"message": f"no dashboard asset {name!r}",
                                                  "type": "invalid_request_error", "code": "not_found"}})
            return web.Response(status=404, body=body, content_type="application/json")
        return web.Response(body=dash.file(name), content_type=content_type, charset="utf-8")

    app.router.add_get("/dashboard", page)
    app.router.add_get("/dashboard/", page)
    app.router.add_get("/dashboard/data.json", data)
    app.router.add_get("/dashboard/assets/{name}", asset)
    app.cleanup_ctx.append(dash.lifecycle)
    return dash
