"""The load scraper against real HTTP servers on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import aiohttp
import pytest
from aiohttp import web

from tokenyard.sim.testing import running_sim
from tokenyard.upstream.scrape import LoadScraper, ScrapeConfig, metrics_url


class MetricsServer:
    """A loopback server whose /metrics page the test rewrites; status 500 on demand."""

    def __init__(self) -> None:
        self.page = "vllm:num_requests_running 1\nvllm:num_requests_waiting 0\nvllm:kv_cache_usage_perc 0.1\n"
        self.status = 200
        self.hits = 0
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app)
        self.url = ""

    async def _metrics(self, request: web.Request) -> web.Response:
        self.hits += 1
        return web.Response(text=self.page, status=self.status, content_type="text/plain")

    async def start(self) -> None:
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/v1"

    async def stop(self) -> None:
        await self._runner.cleanup()


async def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


async def test_scraper_tracks_page_changes_and_failures() -> None:
    server = MetricsServer()
    await server.start()
    try:
        async with aiohttp.ClientSession() as session:
            config = ScrapeConfig(interval_s=0.05, timeout_s=2.0, stale_after_s=30.0)
            async with LoadScraper(session, {"a": metrics_url(server.url)}, config) as scraper:
                await wait_until(lambda: scraper.latest("a") is not None)
                first = scraper.fresh("a")
                assert first is not None and first.running == 1 and first.kv_usage == pytest.approx(0.1)

                server.page = "# TYPE x gauge\nvllm:num_requests_running{m=\"x\"} 9\nvllm:num_requests_waiting 4\n"
                await wait_until(lambda: (load := scraper.latest("a")) is not None and load.running == 9)
                load = scraper.latest("a")
                assert load is not None and load.waiting == 4

                server.status = 500
                failures = scraper.failures["a"]
                await wait_until(lambda: scraper.failures["a"] >= failures + 2)
                # A failed scrape keeps the last good sample; it goes stale by its own timestamp.
                kept = scraper.latest("a")
                assert kept is not None and kept.running == 9
    finally:
        await server.stop()


async def test_unreachable_endpoint_counts_failures_and_goes_stale(unused_port: int) -> None:
    async with aiohttp.ClientSession() as session:
        config = ScrapeConfig(interval_s=0.05, timeout_s=1.0, stale_after_s=0.0)
        scraper = LoadScraper(session, {"down": f"http://127.0.0.1:{unused_port}/metrics"}, config)
        assert await scraper.scrape_once("down") is None
        assert scraper.failures["down"] == 1 and scraper.latest("down") is None and scraper.fresh("down") is None
        scraper.start()
        await wait_until(lambda: scraper.failures["down"] >= 3)
        await scraper.stop()


async def test_scrapes_the_simulator_under_load() -> None:
    """Against the real simulator: queued and running requests show up, prefix-cache counters move."""
    async with (
        running_sim(profile="fast", seed=0, max_num_seqs=2, itl_ms=10.0) as sim,
        aiohttp.ClientSession() as session,
    ):
        url = sim.base_url + "/v1"
        scraper = LoadScraper(session, {"sim": metrics_url(url)}, ScrapeConfig(interval_s=0.05))
        idle = await scraper.scrape_once("sim")
        assert idle is not None and idle.running == 0 and idle.waiting == 0

        async def one() -> None:
            body = {"model": sim.model, "prompt": "hello " * 50, "max_tokens": 40}
            async with session.post(url + "/completions", json=body) as resp:
                assert resp.status == 200
                await resp.read()

        requests = [asyncio.create_task(one()) for _ in range(5)]
        try:
            seen = []
            for _ in range(300):
                load = await scraper.scrape_once("sim")
                if load is not None:
                    seen.append(load)
                    if load.running == 2 and load.waiting >= 1:
                        break
                await asyncio.sleep(0.01)
            assert any(s.running == 2 and s.waiting >= 1 for s in seen), seen[-3:]
        finally:
            await asyncio.wait_for(asyncio.gather(*requests), timeout=60)
        final = await scraper.scrape_once("sim")
        assert final is not None and final.running == 0
        assert final.prefix_cache_queries is not None and final.prefix_cache_queries > 0
