"""Each fault kind over real HTTP, set at run time through /sim/faults (and at start), and determinism."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import openai
import pytest

from tests.integration.sim.helpers import wait_stats
from tokenyard.sim.testing import RunningSim, running_sim

ARRIVAL_CLOCK_TICK_S = 0.004  # one kernel tick at HZ=250: the resolution of the simulator's arrival clock


def _body(sim: RunningSim, max_tokens: int = 5, stream: bool = False) -> dict[str, Any]:
    return {"model": sim.model, "messages": [{"role": "user", "content": "q"}], "max_tokens": max_tokens,
            "stream": stream}


async def _statuses(sim: RunningSim, n: int) -> list[int]:
    out = []
    async with aiohttp.ClientSession() as session:
        for _ in range(n):
            async with session.post(sim.base_url + "/v1/chat/completions", json=_body(sim)) as resp:
                await resp.read()
                out.append(resp.status)
    return out


@pytest.mark.parametrize("status", [429, 500, 503])
async def test_error_rate_by_status(status: int) -> None:
    async with running_sim(profile="fast", seed=3) as sim:
        await sim.set_faults(error_rate=0.5, error_status=status)
        statuses = await _statuses(sim, 40)
        errors = statuses.count(status)
        assert 5 < errors < 35 and statuses.count(200) == 40 - errors
        assert (await sim.stats())["injected_faults"] == errors
        await sim.set_faults(clear=True)
        assert await _statuses(sim, 5) == [200] * 5


async def test_faults_are_deterministic_with_the_seed() -> None:
    runs = []
    for _ in range(2):
        async with running_sim(profile="fast", seed=11, faults={"error_rate": 0.3, "error_status": 503}) as sim:
            runs.append(await _statuses(sim, 30))
    assert runs[0] == runs[1] and 503 in runs[0]


async def test_answers_are_deterministic_with_the_seed() -> None:
    texts = []
    for seed in (5, 5, 6):
        async with running_sim(profile="fast", seed=seed) as sim:
            client = openai.AsyncOpenAI(base_url=sim.base_url + "/v1", api_key="x", max_retries=0)
            try:
                answers = [await client.completions.create(model=sim.model, prompt="p", max_tokens=20)
                           for _ in range(3)]
            finally:
                await client.close()
            texts.append([a.choices[0].text for a in answers])
    assert texts[0] == texts[1]
    assert texts[0] != texts[2]


async def test_hang_holds_until_the_client_gives_up() -> None:
    async with running_sim(profile="fast") as sim:
        await sim.set_faults(hang_rate=1.0)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=0.5)) as session:
            with pytest.raises(asyncio.TimeoutError):
                async with session.post(sim.base_url + "/v1/chat/completions", json=_body(sim)) as resp:
                    await resp.read()
        stats = await wait_stats(sim, lambda s: s["hung"] == 0)
        assert stats["generated_tokens"] == 0


async def test_drop_mid_stream_after_k_tokens() -> None:
    async with running_sim(profile="fast", itl_ms=1.0) as sim:
        await sim.set_faults(drop_after_tokens=3)
        client = openai.AsyncOpenAI(base_url=sim.base_url + "/v1", api_key="x", max_retries=0)
        got: list[str] = []
        try:
            stream = await client.chat.completions.create(**_body(sim, 50, stream=True))
            with pytest.raises(openai.APIError):
                async for chunk in stream:
                    if chunk.choices and chunk.choices[0].delta.content:
                        got.append(chunk.choices[0].delta.content)
        except openai.APIConnectionError:
            pass
        finally:
            await client.close()
        assert len(got) == 3
        stats = await wait_stats(sim, lambda s: s["running"] == 0 and s["aborted_requests"] == 1)
        assert stats["delivered_tokens"] == 3


async def test_drop_non_streaming_closes_without_answer() -> None:
    async with running_sim(profile="fast", itl_ms=1.0, faults={"drop_after_tokens": 2}) as sim, \
            aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientError):
            async with session.post(sim.base_url + "/v1/chat/completions", json=_body(sim, 20)) as resp:
                await resp.read()
        await wait_stats(sim, lambda s: s["aborted_requests"] == 1)


async def test_ttft_inflation_and_latency_spike() -> None:
    async with running_sim(profile="fast") as sim, aiohttp.ClientSession() as session:
        await sim.set_faults(ttft_inflation_ms=300.0)
        start = time.monotonic()
        async with session.post(sim.base_url + "/v1/chat/completions", json=_body(sim, 2, stream=True)) as resp:
            await resp.content.readuntil(b"\n\n")  # role chunk comes with the first token
            # The delay runs from the request's arrival as the kernel reports it (sim/arrival.py), in whole
            # jiffies: the unbiased estimate may precede the true arrival by up to one tick (4 ms at HZ=250).
            assert time.monotonic() - start >= 0.3 - ARRIVAL_CLOCK_TICK_S
            await resp.read()
        await sim.set_faults(clear=True, latency_spike_rate=1.0, latency_spike_ms=300.0)
        async with session.post(sim.base_url + "/v1/chat/completions", json=_body(sim, 3, stream=True)) as resp:
            await resp.content.readuntil(b"\n\n")
            await resp.content.readuntil(b"\n\n")  # first token
            stalled = time.monotonic()
            await resp.content.readuntil(b"\n\n")  # the next one waits out the spike
            assert time.monotonic() - stalled >= 0.25
            await resp.read()


async def test_capacity_loss_limits_running_slots() -> None:
    async with running_sim(profile="fast", itl_ms=5.0) as sim:
        await sim.set_faults(capacity_slots=2)
        tasks = []
        for _ in range(5):
            async def go() -> None:
                async with aiohttp.ClientSession() as session, session.post(
                        sim.base_url + "/v1/chat/completions", json=_body(sim, 1000, stream=True)) as resp:
                    await resp.read()
            tasks.append(asyncio.create_task(go()))
        stats = await wait_stats(sim, lambda s: s["running"] == 2 and s["waiting"] == 3)
        assert stats["slots"] == 2
        await sim.set_faults(capacity_slots=None)
        await wait_stats(sim, lambda s: s["running"] == 5)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_bad_fault_fields_are_400() -> None:
    async with running_sim(profile="fast") as sim:
        for bad in ({"error_rate": 2}, {"error_status": 418}, {"nope": 1}, {"drop_after_tokens": -1}):
            with pytest.raises(ValueError):
                await sim.set_faults(**bad)
        assert (await sim.set_faults(error_rate=0.1))["error_rate"] == 0.1
