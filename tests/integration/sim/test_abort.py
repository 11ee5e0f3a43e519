"""Abort on disconnect at every phase: the sequence leaves the batch and the generated-token counter stops."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from tests.integration.sim.helpers import assert_stops_growing, wait_stats
from tokenyard.sim.testing import RunningSim, running_sim


def _body(sim: RunningSim, max_tokens: int, stream: bool, content: str = "x") -> dict[str, Any]:
    return {"model": sim.model, "messages": [{"role": "user", "content": content}], "max_tokens": max_tokens,
            "stream": stream}


async def _post_and_hold(sim: RunningSim, body: dict[str, Any]) -> asyncio.Task[Any]:
    """Send a request on its own session and keep it open until the returned task is cancelled."""

    async def go() -> None:
        async with aiohttp.ClientSession() as session, session.post(
                sim.base_url + "/v1/chat/completions", json=body) as resp:
            async for _ in resp.content.iter_any():
                pass

    return asyncio.create_task(go())


async def _disconnect(task: asyncio.Task[Any]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_abort_while_queued_frees_the_slot() -> None:
    async with running_sim(profile="fast", max_num_seqs=1, itl_ms=10.0) as sim:
        holder = await _post_and_hold(sim, _body(sim, 2000, stream=True))
        await wait_stats(sim, lambda s: s["running"] == 1)
        queued = await _post_and_hold(sim, _body(sim, 50, stream=False))
        await wait_stats(sim, lambda s: s["waiting"] == 1)
        await _disconnect(queued)  # nothing was ever written on this connection
        stats = await wait_stats(sim, lambda s: s["aborted_requests"] == 1 and s["waiting"] == 0)
        assert stats["running"] == 1
        await _disconnect(holder)
        stats = await wait_stats(sim, lambda s: s["aborted_requests"] == 2 and s["running"] == 0)
        assert stats["kv_cache_usage"] == 0.0
        await assert_stops_growing(sim)


async def test_abort_in_front_end_before_prefill() -> None:
    async with running_sim(profile="fast", ttft_ms=5000.0) as sim:
        task = await _post_and_hold(sim, _body(sim, 50, stream=True))
        await wait_stats(sim, lambda s: s["waiting"] == 1)
        await _disconnect(task)
        stats = await wait_stats(sim, lambda s: s["aborted_requests"] == 1)
        assert stats["generated_tokens"] == 0 and stats["waiting"] == 0


async def test_abort_during_prefill() -> None:
    # One 1,000-token prompt at 1 ms per token: a 1 s prefill step.
    async with running_sim(profile="fast", prefill_ms_per_token=1.0, itl_ms=1.0) as sim:
        task = await _post_and_hold(sim, _body(sim, 500, stream=False, content="y" * 4000))
        await wait_stats(sim, lambda s: s["running"] == 1)
        await _disconnect(task)
        stats = await wait_stats(sim, lambda s: s["aborted_requests"] == 1 and s["running"] == 0)
        assert stats["kv_cache_usage"] == 0.0
        assert await assert_stops_growing(sim) <= 1  # at most the token the prefill step sampled


async def test_abort_while_decoding_streaming() -> None:
    async with running_sim(profile="fast", itl_ms=5.0) as sim, aiohttp.ClientSession() as session:
        resp = await session.post(sim.base_url + "/v1/chat/completions", json=_body(sim, 5000, stream=True))
        seen = 0
        async for _line in resp.content:
            seen += 1
            if seen > 10:
                break
        resp.close()  # drop the connection mid-stream
        stats = await wait_stats(sim, lambda s: s["aborted_requests"] == 1 and s["running"] == 0)
        generated = await assert_stops_growing(sim)
        assert generated < 5000 and stats["delivered_tokens"] <= generated
        assert stats["kv_cache_usage"] == 0.0


async def test_abort_while_decoding_non_streaming() -> None:
    async with running_sim(profile="fast", itl_ms=5.0) as sim:
        task = await _post_and_hold(sim, _body(sim, 5000, stream=False))
        await wait_stats(sim, lambda s: s["generated_tokens"] > 5)
        await _disconnect(task)
        await wait_stats(sim, lambda s: s["aborted_requests"] == 1 and s["running"] == 0)
        generated = await assert_stops_growing(sim)
        assert generated < 5000
        assert (await sim.stats())["delivered_tokens"] == 0


async def test_no_abort_on_disconnect_leaves_a_zombie() -> None:
    async with running_sim(profile="fast", itl_ms=2.0, abort_on_disconnect=False) as sim:
        task = await _post_and_hold(sim, _body(sim, 200, stream=True))
        await wait_stats(sim, lambda s: s["generated_tokens"] > 5)
        await _disconnect(task)
        stats = await wait_stats(sim, lambda s: s["zombies"] == 1)
        assert stats["aborted_requests"] == 0
        stats = await wait_stats(sim, lambda s: s["completed_requests"] == 1)
        assert stats["generated_tokens"] == 200  # the engine kept generating for nobody
        assert stats["delivered_tokens"] < 200
