"""Pickers chosen per pool in config, fed by the gateway: locality by the client's zone header, session
affinity by the session header, p2c on scraped backend load."""

from __future__ import annotations

import asyncio
import contextlib

import aiohttp

from tests.integration.routing.helpers import chat, post, routing_config
from tokenyard.gateway.app import running_gateway
from tokenyard.sim.testing import running_sim


async def test_locality_session_and_p2c_pools() -> None:
    async with contextlib.AsyncExitStack() as stack:
        sims = [await stack.enter_async_context(running_sim("fast", seed=i)) for i in range(3)]
        model = sims[0].model

        def pool(picker: str) -> dict[str, object]:
            return {"picker": picker, "upstream_model": model,
                    "endpoints": [{"url": s.base_url + "/v1", "name": f"{picker}-{i}", "zone": f"z{i}"}
                                  for i, s in enumerate(sims)]}

        config = routing_config({"near": pool("locality"), "sticky": pool("session"), "balanced": pool("p2c")},
                                routing={"scrape_interval_ms": 100})
        gw = await stack.enter_async_context(running_gateway(config))
        session = await stack.enter_async_context(aiohttp.ClientSession())

        for zone in ("z2", "z1", "z2"):
            status, _, headers = await post(session, gw, chat("near"), {"x-tokenyard-zone": zone})
            assert status == 200 and headers["x-tokenyard-backend"] == f"locality-{zone[1]}"

        backends = set()
        for _ in range(4):
            status, _, headers = await post(session, gw, chat("sticky"), {"x-tokenyard-session": "user-42"})
            assert status == 200
            backends.add(headers["x-tokenyard-backend"])
        assert len(backends) == 1  # one session, one endpoint

        await asyncio.sleep(0.4)  # a few scrape rounds
        scraper = gw.gateway.router._scraper
        # Pools listing the same URL share one endpoint (named by the first pool that lists it).
        names = [e.name for e in gw.gateway.pools["balanced"].endpoints]
        assert scraper is not None and all(scraper.fresh(name) is not None for name in names)
        results = await asyncio.gather(*(post(session, gw, chat("balanced")) for _ in range(12)))
        assert all(status == 200 for status, _, _ in results)
        assert len({headers["x-tokenyard-backend"] for _, _, headers in results}) >= 2
