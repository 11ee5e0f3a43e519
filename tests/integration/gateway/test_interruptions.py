"""Upstream death mid-stream and admin aborts reach the client as SSE error events, never ``[DONE]``."""

from __future__ import annotations

import asyncio

import aiohttp
import openai
import pytest

from tests.integration.gateway.helpers import chat_body, gateway_for, metric_value, wait_until_idle
from tokenyard.sim.testing import running_sim


async def test_upstream_death_mid_stream_is_an_error_event() -> None:
    async with running_sim("fast", faults={"drop_after_tokens": 5}) as sim, gateway_for([sim]) as gw:
        async with aiohttp.ClientSession() as session, session.post(
                gw.base_url + "/v1/chat/completions", json=chat_body(sim.model, 50, stream=True)) as resp:
            text = (await resp.read()).decode()
        assert "event: error" in text and "[DONE]" not in text
        assert all(block.startswith("id: ") for block in text.strip().split("\n\n"))
        client = openai.AsyncOpenAI(base_url=gw.base_url + "/v1", api_key="unused", max_retries=0)
        try:
            stream = await client.chat.completions.create(model=sim.model, stream=True, max_tokens=50,
                                                          messages=[{"role": "user", "content": "hi"}])
            with pytest.raises(openai.APIError):
                async for _ in stream:
                    pass
        finally:
            await client.close()
        labels = {"model": sim.model, "class": "standard", "outcome": "upstream_interrupted"}
        assert metric_value(gw, "tokenyard_requests_total", labels) == 2


async def test_admin_abort_closes_the_upstream_and_tells_the_client() -> None:
    admin = {"Authorization": "Bearer admin-secret"}
    async with running_sim("fast", ttft_ms=20.0, itl_ms=5.0, load_factor=1.0) as sim, \
            gateway_for([sim], admin={"key": "admin-secret"}) as gw, aiohttp.ClientSession() as session:
        headers = {"x-request-id": "to-abort"}
        async with session.post(gw.base_url + "/v1/chat/completions", headers=headers,
                                json=chat_body(sim.model, 2000, stream=True)) as resp:
            await resp.content.readline()
            async with session.get(gw.base_url + "/admin/requests") as listing:
                assert listing.status == 401
            async with session.get(gw.base_url + "/admin/requests", headers=admin) as listing:
                ids = [row["id"] for row in (await listing.json())["requests"]]
            assert ids == ["to-abort"]
            async with session.post(gw.base_url + "/admin/requests/to-abort/abort", headers=admin) as aborted:
                assert (await aborted.json())["aborted"] is True
            text = (await asyncio.wait_for(resp.read(), 10)).decode()
        assert "event: error" in text and "[DONE]" not in text
        stats = await wait_until_idle(sim)
        assert stats["running"] == 0 and stats["aborted_requests"] == 1
        assert stats["generated_tokens"] < 2000
        assert metric_value(gw, "tokenyard_upstream_aborts_total", {"reason": "admin"}) == 1
        async with session.post(gw.base_url + "/admin/requests/gone/abort", headers=admin) as missing:
            assert missing.status == 404
