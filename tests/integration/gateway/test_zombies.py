"""No zombie inference: every way a client can leave closes the upstream request at once (checked on the sim)."""

from __future__ import annotations

import asyncio

import aiohttp

from tests.integration.gateway.helpers import (
    chat_body,
    gateway_for,
    histogram_quantile_bound,
    leave_after,
    metric_value,
    stream_then_leave,
    wait_until_idle,
)
from tokenyard.sim.testing import running_sim

SLOW = {"ttft_ms": 20.0, "itl_ms": 5.0, "load_factor": 1.0}
NO_ADMISSION = {"enabled": False, "scrape": False}


async def test_streams_left_after_20_tokens_stop_generating() -> None:
    n = 100
    # Admission off: all 100 must reach the server at once (admission's own limits have their own tests).
    async with running_sim("fast", **SLOW) as sim, gateway_for([sim], admission=NO_ADMISSION) as gw, \
            aiohttp.ClientSession() as session:
        body = chat_body(sim.model, 2000, stream=True)
        seen = await asyncio.gather(*(stream_then_leave(session, gw.base_url, body, 20) for _ in range(n)))
        assert all(count == 20 for count in seen)
        stats = await wait_until_idle(sim)
        assert stats["running"] == 0
        assert stats["aborted_requests"] == n
        assert stats["generated_tokens"] <= 1.1 * stats["delivered_tokens"] + 2 * n
        labels = {"model": sim.model, "class": "standard", "outcome": "client_aborted"}
        assert metric_value(gw, "tokenyard_requests_total", labels) == n
        assert metric_value(gw, "tokenyard_upstream_aborts_total", {"reason": "client_disconnect"}) == n
        assert histogram_quantile_bound(gw, "tokenyard_cancel_latency_seconds", 0.99) <= 0.05


async def test_clients_leaving_while_queued_in_the_server_free_their_place() -> None:
    async with running_sim("fast", max_num_seqs=2, **SLOW) as sim, gateway_for([sim]) as gw, \
            aiohttp.ClientSession() as session:
        body = chat_body(sim.model, 2000, stream=True)
        running = [asyncio.create_task(stream_then_leave(session, gw.base_url, body, 10_000)) for _ in range(2)]
        await asyncio.sleep(0.3)
        await asyncio.gather(*(leave_after(session, gw.base_url, body, 0.3) for _ in range(10)))
        for _ in range(40):
            stats = await sim.stats()
            if stats["waiting"] == 0:
                break
            await asyncio.sleep(0.05)
        assert stats["waiting"] == 0  # the queued ones were removed, not left to run later
        assert stats["running"] == 2
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        stats = await wait_until_idle(sim)
        assert stats["aborted_requests"] == 12
        assert stats["generated_tokens"] <= 1.1 * stats["delivered_tokens"] + 2 * 12
        assert metric_value(gw, "tokenyard_upstream_aborts_total", {"reason": "client_disconnect"}) == 12


async def test_clients_leaving_before_the_first_token_generate_nothing() -> None:
    n = 20
    async with running_sim("fast", ttft_ms=3000.0, itl_ms=5.0, load_factor=1.0) as sim, gateway_for([sim]) as gw, \
            aiohttp.ClientSession() as session:
        body = chat_body(sim.model, 2000, stream=True)
        await asyncio.gather(*(leave_after(session, gw.base_url, body, 0.3) for _ in range(n)))
        stats = await wait_until_idle(sim, timeout=2.0)
        assert stats["running"] == 0 and stats["waiting"] == 0
        assert stats["generated_tokens"] <= 2 * n
        assert metric_value(gw, "tokenyard_upstream_aborts_total", {"reason": "client_disconnect"}) == n
        await asyncio.sleep(3.5)  # past the simulated time to first token: nothing starts after all
        stats = await sim.stats()
        assert stats["running"] == 0 and stats["generated_tokens"] <= 2 * n
        assert histogram_quantile_bound(gw, "tokenyard_cancel_latency_seconds", 0.99) <= 0.05


async def test_non_streaming_clients_leaving_stop_generation() -> None:
    n = 20
    async with running_sim("fast", **SLOW) as sim, gateway_for([sim]) as gw, aiohttp.ClientSession() as session:
        body = chat_body(sim.model, 2000, stream=False)
        await asyncio.gather(*(leave_after(session, gw.base_url, body, 0.3) for _ in range(n)))
        stats = await wait_until_idle(sim, timeout=2.0)
        assert stats["running"] == 0
        assert stats["aborted_requests"] == n
        # ~60 tokens each were made in the 0.3 s before leaving; a zombie would make 2,000.
        assert stats["generated_tokens"] <= n * 200
        labels = {"model": sim.model, "class": "standard", "outcome": "client_aborted"}
        assert metric_value(gw, "tokenyard_requests_total", labels) == n
