"""The simulator through the official ``openai`` client over real HTTP on loopback."""

from __future__ import annotations

import asyncio
import json
from typing import Any, cast

import aiohttp
import openai
import pytest

from tests.integration.sim.helpers import wait_stats
from tokenyard.sim.testing import running_sim


async def test_async_chat_streaming_with_usage() -> None:
    async with running_sim(profile="fast", seed=1) as sim:
        client = openai.AsyncOpenAI(base_url=sim.base_url + "/v1", api_key="x", max_retries=0)
        try:
            stream = await client.chat.completions.create(
                model=sim.model, messages=[{"role": "user", "content": "hello there"}], max_tokens=7, stream=True,
                stream_options={"include_usage": True})
            chunks = [chunk async for chunk in stream]
        finally:
            await client.close()
        assert chunks[0].choices[0].delta.role == "assistant"
        contents = [c.choices[0].delta.content for c in chunks[1:] if c.choices and c.choices[0].delta.content]
        assert len(contents) == 7
        finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
        assert finishes == ["length"]
        assert chunks[-1].choices == []
        assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 7
        stats = await sim.stats()
        assert stats["generated_tokens"] == 7 and stats["delivered_tokens"] == 7
        assert stats["completed_requests"] == 1


async def test_async_chat_non_streaming_and_completions() -> None:
    async with running_sim(profile="fast", seed=1) as sim:
        client = openai.AsyncOpenAI(base_url=sim.base_url + "/v1", api_key="x", max_retries=0)
        try:
            chat = await client.chat.completions.create(
                model=sim.model, messages=[{"role": "user", "content": "hi"}], max_tokens=12)
            text = await client.completions.create(model=sim.model, prompt="Once upon", max_tokens=5)
            stream = await client.completions.create(model=sim.model, prompt="Once upon", max_tokens=4, stream=True)
            streamed = [c.choices[0].text async for c in stream if c.choices]
            models = await client.models.list()
        finally:
            await client.close()
        assert chat.usage is not None and chat.usage.completion_tokens == 12
        assert chat.choices[0].finish_reason == "length"
        assert len((chat.choices[0].message.content or "").split()) == 12
        assert text.usage is not None and text.usage.completion_tokens == 5 and text.usage.prompt_tokens == 3
        assert len(streamed) == 4
        assert [m.id for m in models.data] == [sim.model]


async def test_sync_client_streaming_and_not() -> None:
    async with running_sim(profile="fast", seed=1) as sim:
        def call() -> tuple[int, int]:
            client = openai.OpenAI(base_url=sim.base_url + "/v1", api_key="x", max_retries=0)
            with client:
                whole = client.chat.completions.create(
                    model=sim.model, messages=[{"role": "user", "content": "x"}], max_tokens=3)
                stream = client.chat.completions.create(
                    model=sim.model, messages=[{"role": "user", "content": "x"}], max_tokens=9, stream=True)
                count = sum(1 for c in stream if c.choices and c.choices[0].delta.content)
            assert whole.usage is not None
            return whole.usage.completion_tokens, count

        assert await asyncio.to_thread(call) == (3, 9)


async def test_default_output_len_finishes_with_stop() -> None:
    async with running_sim(profile="fast", seed=1, output_len=6) as sim:
        client = openai.AsyncOpenAI(base_url=sim.base_url + "/v1", api_key="x", max_retries=0)
        try:
            chat = await client.chat.completions.create(model=sim.model, messages=[{"role": "user", "content": "x"}])
        finally:
            await client.close()
        assert chat.usage is not None and chat.usage.completion_tokens == 6
        assert chat.choices[0].finish_reason == "stop"


@pytest.mark.parametrize(("body", "status", "param"), [
    (b"not json", 400, None),
    (b"[]", 400, None),
    (json.dumps({"messages": [{"role": "user", "content": "x"}]}).encode(), 400, "model"),
    (json.dumps({"model": "sim-fast", "messages": []}).encode(), 400, "messages"),
    (json.dumps({"model": "sim-fast", "messages": ["x"]}).encode(), 400, "messages"),
    (json.dumps({"model": "sim-fast", "messages": [{"role": "user"}], "max_tokens": 0}).encode(), 400, "max_tokens"),
    (json.dumps({"model": "sim-fast", "messages": [{"role": "user"}], "max_tokens": "5"}).encode(), 400,
     "max_tokens"),
    (json.dumps({"model": "sim-fast", "messages": [{"role": "user"}], "stream": "yes"}).encode(), 400, "stream"),
    (json.dumps({"model": "sim-fast", "messages": [{"role": "user"}], "max_tokens": 10**9}).encode(), 400,
     "messages"),
    (json.dumps({"model": "other", "messages": [{"role": "user"}]}).encode(), 404, "model"),
])
async def test_bad_input_gets_openai_error(body: bytes, status: int, param: str | None) -> None:
    async with running_sim(profile="fast") as sim, aiohttp.ClientSession() as session, session.post(
            sim.base_url + "/v1/chat/completions", data=body,
            headers={"Content-Type": "application/json"}) as resp:
        assert resp.status == status
        error = (await resp.json())["error"]
        assert set(error) >= {"message", "type", "code"} and error["message"]
        assert error["param"] == param


async def test_queue_full_is_429() -> None:
    async with running_sim(profile="fast", max_num_seqs=1, max_queue=1, itl_ms=50.0) as sim, \
            aiohttp.ClientSession() as session:
        body = {"model": sim.model, "messages": [{"role": "user", "content": "x"}], "max_tokens": 100}
        url = sim.base_url + "/v1/chat/completions"
        first = asyncio.create_task(session.post(url, json=body))
        await wait_stats(sim, lambda s: s["running"] == 1)
        second = asyncio.create_task(session.post(url, json=body))
        await wait_stats(sim, lambda s: s["waiting"] == 1)
        async with session.post(url, json=body) as resp:
            assert resp.status == 429
            assert resp.headers["Retry-After"] == "1"
            assert (await resp.json())["error"]["code"] == 429
        for task in (first, second):
            task.cancel()
        await asyncio.gather(first, second, return_exceptions=True)
        assert (await sim.stats())["rejected_requests"] == 1


async def test_health_metrics_and_reset() -> None:
    async with running_sim(profile="fast") as sim, aiohttp.ClientSession() as session:
        async with session.post(sim.base_url + "/v1/completions",
                                json={"model": sim.model, "prompt": "abc", "max_tokens": 3}) as resp:
            assert resp.status == 200
        async with session.get(sim.base_url + "/health") as resp:
            assert resp.status == 200
        async with session.get(sim.base_url + "/metrics") as resp:
            text = await resp.text()
        for name in ("vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc",
                     "vllm:prefix_cache_queries_total", "vllm:prefix_cache_hits_total",
                     "vllm:generation_tokens_total", "vllm:prompt_tokens_total", "sim_generated_tokens_total",
                     "sim_delivered_tokens_total", "sim_aborted_requests_total", "sim_completed_requests_total",
                     "vllm:time_to_first_token_seconds_bucket", "vllm:inter_token_latency_seconds_count"):
            assert name in text
        assert 'sim_generated_tokens_total{model_name="sim-fast"} 3' in text
        assert 'vllm:request_success_total{model_name="sim-fast",finished_reason="length"} 1' in text
        await sim.reset()
        stats = await sim.stats()
        assert stats["generated_tokens"] == 0 and stats["completed_requests"] == 0


async def test_non_streaming_beside_streams_completes() -> None:
    """Regression: when a step mixes engine-written streams with non-streaming requests, the engine reports
    ``finished`` one phase after the last token, yielding in between; a non-streaming handler woken there must
    wait for it, not spin (which froze the event loop, and the demo with it)."""
    async with running_sim(profile="large", seed=3, ttft_ms=20.0, itl_ms=2.0) as sim, aiohttp.ClientSession() as s:
        async def whole(i: int) -> int:
            body = {"model": sim.model, "max_tokens": 5 + i, "messages": [{"role": "user", "content": f"q{i}"}]}
            async with s.post(sim.base_url + "/v1/chat/completions", json=body) as resp:
                assert resp.status == 200
                answer = cast(dict[str, Any], await resp.json())
                return int(answer["usage"]["completion_tokens"])

        async def stream(i: int) -> int:
            body = {"model": sim.model, "max_tokens": 40, "stream": True,
                    "messages": [{"role": "user", "content": f"s{i}"}]}
            async with s.post(sim.base_url + "/v1/chat/completions", json=body) as resp:
                assert resp.status == 200
                return (await resp.read()).count(b"data: ")

        results = await asyncio.wait_for(
            asyncio.gather(*(stream(i) for i in range(4)), *(whole(i) for i in range(8))), timeout=20)
        assert results[4:] == [5 + i for i in range(8)]
        assert all(events > 40 for events in results[:4])
