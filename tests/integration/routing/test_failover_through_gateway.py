"""One of three simulators is killed mid-load behind the gateway.

No non-streaming request may fail; a stream may fail only if it had already started (its head was relayed
before the kill); everything sent after the kill succeeds. The dead endpoint is reported down.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import aiohttp

from tests.integration.routing.helpers import chat, endpoints, metric, routing_config
from tokenyard.gateway.app import running_gateway
from tokenyard.sim.testing import running_sim


async def test_killing_one_of_three_fails_only_started_streams() -> None:
    async with contextlib.AsyncExitStack() as stack:
        sims = [await stack.enter_async_context(running_sim("fast", seed=i, itl_ms=5.0)) for i in range(3)]
        config = routing_config(
            {"chat": {"endpoints": endpoints(sims), "picker": "least-load", "upstream_model": sims[0].model}},
            routing={"outlier": {"consecutive_failures": 2, "base_ejection_ms": 60000, "max_ejection_ms": 60000},
                     "health": {"interval_ms": 200, "timeout_ms": 500}, "retry_min_concurrent": 10},
            # A third of the load fails at once when its backend dies: the budget must cover that burst.
            retries={"attempts": 3, "budget_ratio": 0.5},
        )
        gw = await stack.enter_async_context(running_gateway(config))
        session = await stack.enter_async_context(aiohttp.ClientSession())
        killed_at: list[float] = []

        async def one(i: int) -> tuple[bool, bool, float, bool]:
            """(stream, ok, started, got_head)"""
            stream = i % 3 == 0
            started = time.monotonic()
            async with session.post(gw.base_url + "/v1/chat/completions", json=chat("chat", 30, stream)) as resp:
                body = await resp.read()
                if stream:
                    return True, resp.status == 200 and b"[DONE]" in body, started, resp.status == 200
                return False, resp.status == 200 and b'"choices"' in body, started, resp.status == 200

        async def kill() -> None:
            await asyncio.sleep(0.4)
            killed_at.append(time.monotonic())
            await sims[0].server.stop()

        killer = asyncio.create_task(kill())
        results: list[tuple[bool, bool, float, bool]] = []
        for _wave in range(6):  # bounded: 6 waves of 24 concurrent requests
            results += await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(24))), timeout=60)
        await killer

        assert len(results) == 144
        assert all(ok for stream, ok, _, _ in results if not stream), "a non-streaming request failed"
        failed_streams = [(started, head) for stream, ok, started, head in results if stream and not ok]
        assert all(head and started < killed_at[0] for started, head in failed_streams), failed_streams
        # The dead endpoint is down for routing and for the gauge; the others took over.
        await asyncio.sleep(0.6)
        pool = gw.gateway.pools["chat"]
        assert not pool.health.status("sim0").routable
        assert metric(gw, "tokenyard_backend_up", {"backend": "sim0"}) == 0
        assert metric(gw, "tokenyard_backend_up", {"backend": "sim1"}) == 1
        assert metric(gw, "tokenyard_backend_inflight", {"backend": "sim1"}) == 0
        survivors = sum([(await sim.stats())["completed_requests"] for sim in sims[1:]])
        assert survivors >= 100
        async with session.get(gw.base_url + "/readyz") as resp:
            assert resp.status == 200
