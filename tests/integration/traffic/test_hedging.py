"""Hedging against real simulators: the slow first attempt loses, is cancelled and aborted upstream (no zombie)."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import aiohttp
import pytest

from tokenyard.policy.retry_budget import RetryBudget
from tokenyard.sim.testing import running_sim
from tokenyard.traffic.retry import RetryEngine, hedge


async def settle(sim: Any, predicate: Any, timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        stats: dict[str, Any] = await sim.stats()
        if predicate(stats) or time.monotonic() > deadline:
            return stats
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("stream", [False, True])
async def test_hedge_loser_is_aborted_upstream(stream: bool) -> None:
    async with (
        running_sim(profile="fast", seed=1, itl_ms=5.0) as slow,
        running_sim(profile="fast", seed=2, itl_ms=5.0) as fast,
        aiohttp.ClientSession() as session,
    ):
        await slow.set_faults(ttft_inflation_ms=20_000)  # the first attempt would take 20 s to its first token
        sims = [slow, fast]

        async def attempt(index: int) -> bytes:
            body = {"model": sims[index].model, "prompt": "hi " * 20, "max_tokens": 20, "stream": stream}
            async with session.post(sims[index].base_url + "/v1/completions", json=body) as resp:
                assert resp.status == 200
                # A stream "wins" at its first chunk; the whole answer is read by the winner only.
                first = await resp.content.readany() if stream else b""
                return first + await resp.read()

        engine = RetryEngine(RetryBudget(min_retries=1), random.Random(0))
        losers: list[int] = []
        with engine.begin(["chat"]) as retries:
            answer = await asyncio.wait_for(
                hedge(attempt, delay_s=0.2, allow=retries.try_hedge, on_loser=losers.append), timeout=30
            )
        assert answer and losers == [0]
        assert engine.budget.active_retries == 0

        slow_stats = await settle(slow, lambda s: s["aborted_requests"] >= 1 and s["running"] + s["waiting"] == 0)
        assert slow_stats["aborted_requests"] == 1 and slow_stats["running"] == 0 and slow_stats["waiting"] == 0
        assert slow_stats["completed_requests"] == 0 and slow_stats["delivered_tokens"] == 0
        fast_stats = await fast.stats()
        assert fast_stats["completed_requests"] == 1 and fast_stats["aborted_requests"] == 0
