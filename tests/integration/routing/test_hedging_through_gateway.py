"""Hedging through the gateway: a slow first attempt is raced by a second; the loser is aborted upstream."""

from __future__ import annotations

import asyncio
import contextlib

import aiohttp

from tests.integration.routing.helpers import chat, metric, post, routing_config
from tokenyard.gateway.app import running_gateway
from tokenyard.sim.testing import running_sim


async def test_hedge_loser_is_aborted_and_leaves_no_zombie() -> None:
    async with contextlib.AsyncExitStack() as stack:
        slow = await stack.enter_async_context(running_sim("fast", seed=1, ttft_ms=3000.0, itl_ms=20.0))
        fast = await stack.enter_async_context(running_sim("fast", seed=2, itl_ms=2.0))
        config = routing_config(
            {"chat": {"endpoints": [{"url": slow.base_url + "/v1", "name": "a-slow"},
                                    {"url": fast.base_url + "/v1", "name": "b-fast"}],
                      "picker": "round-robin", "upstream_model": fast.model}},
            routing={"classes": {"premium": {"hedge_delay_ms": 150}}},
        )
        gw = await stack.enter_async_context(running_gateway(config))
        session = await stack.enter_async_context(aiohttp.ClientSession())
        premium = {"x-tokenyard-class": "premium"}
        for stream in (False, False, True, True):
            status, body, headers = await asyncio.wait_for(
                post(session, gw, chat("chat", 20, stream), premium), timeout=10)
            assert status == 200 and headers["x-tokenyard-backend"] == "b-fast"
            assert (b"[DONE]" in body) == stream
        await asyncio.sleep(0.3)
        losers = metric(gw, "tokenyard_upstream_aborts_total", {"reason": "hedge_loser"})
        stats = await slow.stats()
        assert stats["running"] == 0 and stats["waiting"] == 0, stats  # no zombie generation
        assert losers >= 2 and stats["aborted_requests"] == losers and stats["completed_requests"] == 0
        generated = stats["generated_tokens"]
        await asyncio.sleep(0.3)
        assert (await slow.stats())["generated_tokens"] == generated
        assert metric(gw, "tokenyard_backend_inflight", {"backend": "a-slow"}) == 0
