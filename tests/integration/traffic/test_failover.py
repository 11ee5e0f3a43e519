"""Picker + health + retries composed against three real simulators; one is killed mid-load.

Non-streaming requests must all succeed: those in flight on the dead simulator are retried on another one,
and the dead one is ejected so later requests do not try it first.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from typing import Any

import aiohttp

from tokenyard.policy.outlier import OutlierConfig
from tokenyard.policy.pickers.endpoint import EndpointView, RequestFeatures
from tokenyard.policy.pickers.registry import PickerOptions, create_picker
from tokenyard.policy.retry_budget import RetryBudget
from tokenyard.sim.testing import running_sim
from tokenyard.traffic.health import HealthConfig, Outcome, PoolHealth, pick_with_permit
from tokenyard.traffic.retry import AttemptError, AttemptFailure, RetryEngine, RetryPolicy, run_with_retries


async def test_killing_one_of_three_loses_no_non_streaming_request() -> None:
    async with contextlib.AsyncExitStack() as stack:
        sims = [await stack.enter_async_context(running_sim(profile="fast", seed=i, itl_ms=5.0))
                for i in range(3)]
        session = await stack.enter_async_context(aiohttp.ClientSession())
        urls = {f"sim{i}": sim.base_url + "/v1" for i, sim in enumerate(sims)}
        inflight = dict.fromkeys(urls, 0)
        health = PoolHealth(urls, HealthConfig(outlier=OutlierConfig(consecutive_failures=2, max_ejected_share=0.5)))
        picker = create_picker("least-load", PickerOptions(seed=0))
        engine = RetryEngine(RetryBudget(ratio=0.5, min_retries=10), random.Random(0))
        attempts_on_dead_after_ejection = 0

        def choose(pool: str, tried: frozenset[str]) -> EndpointView | None:
            views = [EndpointView(name=n, url=u, inflight_requests=inflight[n]) for n, u in urls.items()
                     if n not in tried]
            return pick_with_permit(picker, health, views, RequestFeatures())

        async def send(pool: str, endpoint: EndpointView) -> dict[str, Any]:
            nonlocal attempts_on_dead_after_ejection
            if endpoint.name == "sim0" and health.status("sim0").ejected:
                attempts_on_dead_after_ejection += 1
            inflight[endpoint.name] += 1
            started = time.monotonic()
            body = {"model": sims[0].model, "prompt": "hello " * 30, "max_tokens": 30}
            try:
                async with session.post(endpoint.url + "/completions", json=body) as resp:
                    if resp.status != 200:
                        health.report(endpoint.name, Outcome.from_status(resp.status))
                        raise AttemptError(AttemptFailure(Outcome.from_status(resp.status), resp.status))
                    data: dict[str, Any] = await resp.json()
            except aiohttp.ClientError as error:
                health.report(endpoint.name, Outcome.CONNECT_ERROR)
                raise AttemptError(AttemptFailure(Outcome.CONNECT_ERROR), str(error)) from error
            finally:
                inflight[endpoint.name] -= 1
            health.report(endpoint.name, Outcome.SUCCESS, time.monotonic() - started)
            return data

        async def one_request() -> dict[str, Any]:
            with engine.begin(["chat"], RetryPolicy(max_attempts=3)) as retries:
                return await run_with_retries(retries, choose, send, lambda e: e.name)

        async def kill_sim0() -> None:
            await asyncio.sleep(0.3)
            await sims[0].server.stop()

        killer = asyncio.create_task(kill_sim0())
        results = []
        for wave in range(6):  # 6 waves of 20 concurrent requests, the kill lands in the second wave
            results += await asyncio.wait_for(asyncio.gather(*(one_request() for _ in range(20))), timeout=60)
            if wave == 0:
                await asyncio.sleep(0.2)
        await killer

        assert len(results) == 120 and all(r["choices"][0]["text"] for r in results)
        assert health.status("sim0").ejected
        assert attempts_on_dead_after_ejection == 0
        assert engine.budget.active_requests == 0 and engine.budget.active_retries == 0
        completed = [(await sim.stats())["completed_requests"] for sim in sims[1:]]
        assert sum(completed) >= 80  # the survivors took over
