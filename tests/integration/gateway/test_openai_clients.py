"""The official ``openai`` clients (sync and async, streaming and not) work unchanged through the gateway."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import openai

from tests.integration.gateway.helpers import gateway_for, metric_value
from tokenyard.sim.testing import running_sim

MESSAGES = [{"role": "user", "content": "Say something."}]


async def test_async_client_streaming_and_not(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    async with running_sim("fast") as sim, gateway_for([sim], log) as gw:
        client = openai.AsyncOpenAI(base_url=gw.base_url + "/v1", api_key="unused", max_retries=0)
        try:
            whole = await client.chat.completions.with_raw_response.create(
                model=sim.model, messages=MESSAGES, max_tokens=7, extra_headers={"x-request-id": "req-123"})
            assert whole.headers["x-request-id"] == "req-123"
            assert whole.headers["x-tokenyard-class"] == "standard"
            assert whole.headers["x-tokenyard-backend"]
            completion = whole.parse()
            assert completion.usage is not None and completion.usage.completion_tokens == 7
            stream = await client.chat.completions.create(
                model=sim.model, messages=MESSAGES, max_tokens=9, stream=True,
                stream_options={"include_usage": True})
            pieces = [chunk async for chunk in stream]
            text = "".join(c.choices[0].delta.content or "" for c in pieces if c.choices)
            assert text
            assert pieces[-1].usage is not None and pieces[-1].usage.completion_tokens == 9
            legacy = await client.completions.create(model=sim.model, prompt="Once", max_tokens=4)
            assert legacy.choices[0].text
            models = await client.models.list()
            assert [m.id for m in models.data] == [sim.model]
        finally:
            await client.close()
        labels = {"model": sim.model, "class": "standard", "outcome": "completed"}
        assert metric_value(gw, "tokenyard_requests_total", labels) == 3
        assert metric_value(gw, "tokenyard_tokens_total",
                            {"model": sim.model, "class": "standard", "kind": "completion"}) == 7 + 9 + 4
        assert metric_value(gw, "tokenyard_time_to_first_token_seconds_count",
                            {"model": sim.model, "class": "standard"}) == 1
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [line["outcome"] for line in lines] == ["completed"] * 3
    assert lines[0]["request_id"] == "req-123" and lines[0]["completion_tokens"] == 7
    assert lines[1]["ttft_ms"] is not None and lines[1]["completion_tokens"] == 9
    assert all(line["prompt_tokens"] > 0 for line in lines)
    assert {"tenant", "class", "model", "backend", "status", "queue_ms"} <= set(lines[0])


async def test_a_stream_without_usage_counts_the_prompt_estimate(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    async with running_sim("fast") as sim, gateway_for([sim], log) as gw:
        client = openai.AsyncOpenAI(base_url=gw.base_url + "/v1", api_key="unused", max_retries=0)
        try:
            stream = await client.chat.completions.create(model=sim.model, messages=MESSAGES, max_tokens=6,
                                                          stream=True)
            pieces = [chunk async for chunk in stream]
            assert all(piece.usage is None for piece in pieces)  # the client did not ask for usage
        finally:
            await client.close()
        prompt = metric_value(gw, "tokenyard_tokens_total", {"model": sim.model, "class": "standard",
                                                              "kind": "prompt"})
    line = json.loads(log.read_text().splitlines()[0])
    assert line["completion_tokens"] == 6
    assert line["prompt_tokens"] > 0 and prompt == line["prompt_tokens"]


def _sync_calls(base_url: str, model: str) -> tuple[str, str, str]:
    with openai.OpenAI(base_url=base_url + "/v1", api_key="unused", max_retries=0) as client:
        whole = client.chat.completions.create(model=model, messages=MESSAGES, max_tokens=5)
        streamed = "".join(
            chunk.choices[0].delta.content or ""
            for chunk in client.chat.completions.create(model=model, messages=MESSAGES, max_tokens=5, stream=True)
            if chunk.choices
        )
        raw = client.chat.completions.with_raw_response.create(model=model, messages=MESSAGES, max_tokens=1)
        return whole.choices[0].message.content or "", streamed, raw.headers["x-request-id"]


async def test_sync_client_streaming_and_not() -> None:
    async with running_sim("fast") as sim, gateway_for([sim]) as gw:
        whole, streamed, request_id = await asyncio.to_thread(_sync_calls, gw.base_url, sim.model)
        assert whole and streamed
        assert request_id  # generated when the client sends none
