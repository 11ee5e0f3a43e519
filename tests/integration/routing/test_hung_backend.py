"""A backend that accepts requests and never answers (the simulator's ``hang_rate``), behind a real gateway.

A stream's attempt that shows no first byte within ``timeouts.first_token_ms`` is a timeout of that attempt: it is
retried on another endpoint (nothing reached the client), counted against the hung endpoint's health until it is
ejected, and closed upstream (no request stays hung there). Only when every attempt timed out does the client get
504 ``upstream_timeout``.
"""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from tests.integration.routing.helpers import chat, endpoints, post, routing_config
from tokenyard.gateway.app import running_gateway
from tokenyard.sim.testing import RunningSim, running_sim

pytestmark = pytest.mark.timeout(60)


async def none_hung(sim: RunningSim) -> bool:
    """Whether the simulator holds no hung request (it notices a closed connection on its own schedule)."""
    for _ in range(100):
        if (await sim.stats())["hung"] == 0:
            return True
        await asyncio.sleep(0.05)
    return False


async def test_streams_fail_over_from_a_hung_backend_which_is_then_ejected() -> None:
    async with running_sim("fast", seed=1, itl_ms=2, faults={"hang_rate": 1.0}) as hung, \
            running_sim("fast", seed=2, itl_ms=2) as good:
        config = routing_config(
            {"chat": {"endpoints": endpoints([hung, good]), "picker": "round-robin", "upstream_model": "sim-fast"}},
            timeouts={"first_token_ms": 300},
            routing={"outlier": {"consecutive_failures": 2}, "slow_start": {"window_ms": 0}},
        )
        async with running_gateway(config) as gw, aiohttp.ClientSession() as session:
            for i in range(6):
                status, raw, headers = await post(session, gw, chat("chat", 4, stream=True, text=f"q{i}"))
                assert status == 200, raw
                assert raw.rstrip().endswith(b"data: [DONE]") and b"event: error" not in raw
                assert headers["x-tokenyard-backend"] == "sim1"
            status_of_hung = gw.gateway.pools["chat"].health.status("sim0")
            assert status_of_hung.ejected  # two timeouts in a row: out of rotation
            assert await none_hung(hung)  # every timed-out attempt was closed upstream


async def test_a_stream_gets_504_only_when_every_attempt_timed_out() -> None:
    async with running_sim("fast", seed=1, faults={"hang_rate": 1.0}) as hung:
        config = routing_config(
            {"chat": {"endpoints": endpoints([hung]), "upstream_model": "sim-fast"}},
            timeouts={"first_token_ms": 200},
        )
        async with running_gateway(config) as gw, aiohttp.ClientSession() as session:
            status, raw, _ = await post(session, gw, chat("chat", 4, stream=True))
            assert status == 504, raw
            assert b'"code":"upstream_timeout"' in raw.replace(b" ", b"")
            assert await none_hung(hung)
