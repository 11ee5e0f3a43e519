"""Active health checks over real HTTP: an endpoint that goes down is marked down, and comes back through slow start."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable

import aiohttp
from aiohttp import web

from tests.conftest import free_port
from tokenyard.policy.slow_start import SlowStart
from tokenyard.traffic.health import ActiveHealthChecker, HealthConfig, PoolHealth, health_url, http_probe


async def _ok(request: web.Request) -> web.Response:
    return web.Response(text="ok")


class HealthServer:
    """A loopback server answering ``GET /health`` that can be stopped and restarted on the same port."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}/v1"
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/health", _ok)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


async def wait_until(predicate: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


async def test_endpoint_goes_down_and_returns_through_slow_start() -> None:
    servers = [HealthServer(free_port()), HealthServer(free_port())]
    for server in servers:
        await server.start()
    config = HealthConfig(interval_s=0.05, timeout_s=1.0, unhealthy_threshold=2, healthy_threshold=1,
                          slow_start=SlowStart(window_s=60.0, floor=0.1))
    health = PoolHealth(["a", "b"], config)
    try:
        async with aiohttp.ClientSession() as session:
            probe = functools.partial(http_probe, session, timeout_s=config.timeout_s)
            targets = {"a": health_url(servers[0].url), "b": health_url(servers[1].url)}
            async with ActiveHealthChecker(health, targets, probe) as checker:
                await wait_until(lambda: checker.rounds >= 2)
                assert health.status("a").routable and health.status("a").slow_start == 1.0

                await servers[0].stop()
                await wait_until(lambda: not health.status("a").healthy)
                assert not health.status("a").routable and health.status("b").routable and health.any_routable()

                await servers[0].start()
                await wait_until(lambda: health.status("a").healthy)
                returned = health.status("a")
                # Back, but warming up: well below full weight, while the steady endpoint stays at 1.
                assert returned.routable and 0.1 <= returned.slow_start < 0.5
                assert health.status("b").slow_start == 1.0
                await asyncio.sleep(0.3)
                assert health.status("a").slow_start > returned.slow_start
    finally:
        for server in servers:
            await server.stop()
