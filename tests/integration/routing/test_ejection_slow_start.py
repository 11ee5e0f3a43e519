"""An endpoint failing every request is ejected; once healthy again it returns through slow start."""

from __future__ import annotations

import asyncio
import contextlib
import time

import aiohttp

from tests.integration.routing.helpers import chat, endpoints, post, routing_config
from tokenyard.gateway.app import running_gateway
from tokenyard.sim.testing import running_sim


async def test_ejected_endpoint_returns_through_slow_start() -> None:
    async with contextlib.AsyncExitStack() as stack:
        sims = [await stack.enter_async_context(running_sim("fast", seed=i, itl_ms=5.0)) for i in range(3)]
        config = routing_config(
            {"chat": {"endpoints": endpoints(sims), "picker": "least-load", "upstream_model": sims[0].model}},
            routing={"outlier": {"consecutive_failures": 2, "base_ejection_ms": 400, "max_ejection_ms": 4000},
                     "breaker": {"failure_threshold": 50},
                     "slow_start": {"window_ms": 4000, "floor": 0.1}},
        )
        gw = await stack.enter_async_context(running_gateway(config))
        session = await stack.enter_async_context(aiohttp.ClientSession())
        health = gw.gateway.pools["chat"].health
        await sims[0].set_faults(error_rate=1.0, error_status=503)
        for _ in range(30):  # bounded: until sim0 is ejected
            status, _, _ = await post(session, gw, chat("chat"))
            assert status == 200  # the failures were retried on the others
            if health.status("sim0").ejected:
                break
        assert health.status("sim0").ejected
        await sims[0].set_faults(clear=True)
        deadline = time.monotonic() + 5.0
        while health.status("sim0").ejected and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        returned = health.status("sim0")
        assert returned.routable and returned.slow_start < 0.6

        for sim in sims:
            await sim.reset()
        for _wave in range(3):  # concurrent waves: a warming endpoint takes a smaller share
            results = await asyncio.gather(*(post(session, gw, chat("chat", 20)) for _ in range(12)))
            assert all(status == 200 for status, _, _ in results)
        done = [(await sim.stats())["completed_requests"] for sim in sims]
        assert 0 < done[0] < min(done[1:]), done

        await asyncio.sleep(max(0.0, 4.2 - (time.monotonic() - deadline + 5.0)))
        while health.status("sim0").slow_start < 1.0 and time.monotonic() < deadline + 6.0:
            await asyncio.sleep(0.1)
        assert health.status("sim0").slow_start == 1.0
