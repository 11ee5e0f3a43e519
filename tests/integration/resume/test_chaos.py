"""Flaky client networks: a chaos proxy between the client and the gateway closes every connection after a few
hundred bytes of answer. With a resume window the client reconnects with ``Last-Event-ID`` until the answer is
whole, and the simulator generates each answer exactly once; without one, each generation is aborted."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from typing import Any

import aiohttp

from tests.integration.resume.helpers import Received, auth, body, read_sse, resume_config, wait_until
from tokenyard.chaos.faults import DirectionFaults, Faults
from tokenyard.chaos.proxy import ChaosProxy
from tokenyard.gateway.app import running_gateway
from tokenyard.sim.testing import running_sim

TOKENS = 24
CLIENTS = 4
CUT_AFTER_BYTES = 1500  # the response head and a handful of events per connection
CUT = (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError, aiohttp.ClientConnectionError)


async def resilient_stream(session: aiohttp.ClientSession, base_url: str, request: dict[str, Any],
                           headers: dict[str, str], max_attempts: int = 40) -> tuple[Received, int]:
    """Stream, and on every cut resume after the last event id; returns what arrived and the reconnects."""
    got = Received()
    reconnects = 0
    try:
        async with session.post(base_url + "/v1/chat/completions", json=request, headers=headers) as resp:
            got.request_id = resp.headers["x-request-id"]
            await read_sse(resp, got)
    except CUT:
        pass
    while not got.done and got.error is None and reconnects < max_attempts:
        reconnects += 1
        try:
            async with session.get(f"{base_url}/v1/streams/{got.request_id}",
                                   headers={"Last-Event-ID": str(got.last_id), **headers}) as resp:
                if resp.status != 200:  # 404: not resumable (no window, or it closed)
                    got.error = (await resp.json())["error"]
                    break
                await read_sse(resp, got)
        except CUT:
            continue
    return got, reconnects


async def answers(sim_seed: int, cut: bool, tenant_key: str) -> tuple[list[Received], list[int], dict[str, Any]]:
    async with AsyncExitStack() as stack:
        sim = await stack.enter_async_context(running_sim(seed=sim_seed, itl_ms=15.0))
        gw = await stack.enter_async_context(running_gateway(resume_config([sim])))
        faults = Faults(down=DirectionFaults(close_after_bytes=CUT_AFTER_BYTES)) if cut else Faults()
        proxy = await stack.enter_async_context(ChaosProxy("127.0.0.1", gw.port, faults, seed=sim_seed))
        # One connection per request (no pooling): the proxy decides faults per connection.
        session = await stack.enter_async_context(aiohttp.ClientSession(connector=aiohttp.TCPConnector(
            force_close=True)))
        url = f"http://127.0.0.1:{proxy.port}"
        results = await asyncio.gather(*(resilient_stream(session, url, body(TOKENS, f"question {i}"),
                                                          auth(tenant_key)) for i in range(CLIENTS)))
        got = [r for r, _ in results]
        reconnects = [n for _, n in results]
        if tenant_key == "sk-plain":
            async def all_aborted() -> bool:
                return int((await sim.stats())["aborted_requests"]) == CLIENTS

            await wait_until(all_aborted)
        return got, reconnects, await sim.stats()


async def test_with_resume_answers_arrive_whole_and_are_generated_once() -> None:
    reference, _, _ = await answers(7, cut=False, tenant_key="sk-tenant-a")
    cut, reconnects, stats = await answers(7, cut=True, tenant_key="sk-tenant-a")
    assert all(r.done and r.error is None for r in cut)
    assert min(reconnects) >= 1  # every answer really was cut (several times)
    assert [r.text() for r in cut] == [r.text() for r in reference]
    for r in cut:
        ids = [i for i, _ in r.events]
        assert ids == list(range(1, len(ids) + 1))
    assert stats["generated_tokens"] == TOKENS * CLIENTS  # each answer generated once
    assert stats["aborted_requests"] == 0


async def test_without_resume_the_generation_is_aborted() -> None:
    got, _, stats = await answers(7, cut=True, tenant_key="sk-plain")
    assert not any(r.done for r in got)
    assert all(r.error is not None and r.error["code"] == "stream_not_found" for r in got)
    assert stats["aborted_requests"] == CLIENTS
    assert stats["generated_tokens"] < TOKENS * CLIENTS
