"""The dashboard routes on a real aiohttp app over loopback: page, assets with content types, refused paths, feed."""

from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from tokenyard.dashboard import ASSETS, DASHBOARD_KEY, add_dashboard_routes
from tokenyard.telemetry.metrics import GatewayMetrics


async def test_page_assets_feed_and_refused_paths() -> None:
    metrics = GatewayMetrics()
    app = web.Application()
    add_dashboard_routes(app, metrics.registry, interval_s=0.05)
    metrics.series("chat", "premium").ttft.observe(0.2)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        resp = await client.get("/dashboard")
        assert resp.status == 200 and resp.content_type == "text/html"
        html = await resp.text()
        assert "/dashboard/assets/dashboard.js" in html and "http" not in html.replace("http-equiv", "")
        for name, content_type in ASSETS.items():
            resp = await client.get(f"/dashboard/assets/{name}")
            assert resp.status == 200 and resp.content_type == content_type
            assert len(await resp.read()) > 100
        for bad in ("index.html", "routes.py", "..%2Froutes.py", "%2e%2e%2f__init__.py", "dashboard.js%00",
                    "nope.css"):
            resp = await client.get(f"/dashboard/assets/{bad}")
            assert resp.status == 404, bad
            if resp.content_type == "application/json":
                assert "error" in await resp.json()
        resp = await client.get("/dashboard/assets/../feed.py")
        assert resp.status == 404
        for _ in range(100):  # the sampler task runs with the app
            if len(app[DASHBOARD_KEY].feed.samples) >= 2:
                break
            await asyncio.sleep(0.05)
        resp = await client.get("/dashboard/data.json")
        assert resp.status == 200 and resp.content_type == "application/json"
        data = await resp.json()
        assert data["samples"] >= 2
        assert data["series"]["ttft_p95_ms"]["premium"][-1] is not None
