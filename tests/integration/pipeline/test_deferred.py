"""Deferred requests on the gateway (gateway/batch.py): 202 + job id, result fetched later in OpenAI's batch
output shape, inline batches, cancel, and bad input as 400s."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp

from tests.integration.loopback_app import serving
from tokenyard.config import config_for_upstream
from tokenyard.gateway.app import build_app
from tokenyard.sim.testing import running_sim

CHAT = {"model": "sim-fast", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}


@asynccontextmanager
async def gateway(upstream: str) -> AsyncIterator[str]:
    app = build_app(config_for_upstream(upstream))
    async with serving(app, handler_cancellation=True, access_log=None) as base_url:
        yield base_url


async def _finished(http: aiohttp.ClientSession, base: str, job_id: str) -> dict[str, Any]:
    for _ in range(400):
        async with http.get(f"{base}/v1/batches/{job_id}") as resp:
            job: dict[str, Any] = await resp.json()
        if job["status"] in ("completed", "cancelled"):
            return job
        await asyncio.sleep(0.025)
    raise AssertionError(f"job {job_id} did not finish: {job}")


async def test_deferred_request_is_accepted_then_fetched() -> None:
    async with running_sim("fast", seed=9) as sim, gateway(sim.base_url) as base, aiohttp.ClientSession() as http:
        async with http.post(base + "/v1/chat/completions", json=CHAT,
                             headers={"x-tokenyard-defer": "true"}) as resp:
            assert resp.status == 202
            job = await resp.json()
            assert job["object"] == "batch" and resp.headers["Location"] == f"/v1/batches/{job['id']}"
        done = await _finished(http, base, job["id"])
        assert done["request_counts"] == {"total": 1, "completed": 1, "failed": 0}
        async with http.get(f"{base}/v1/batches/{job['id']}/output") as resp:
            [line] = [json.loads(x) for x in (await resp.text()).splitlines()]
        assert line["error"] is None and line["response"]["status_code"] == 200
        assert line["response"]["body"]["choices"][0]["message"]["content"]
        assert (await sim.stats())["completed_requests"] == 1
        async with http.post(base + "/v1/chat/completions", json=CHAT) as resp:  # no header: answered now
            assert resp.status == 200


async def test_inline_batch_and_cancel() -> None:
    async with running_sim("fast", seed=10, ttft_ms=50.0, itl_ms=50.0) as sim, gateway(sim.base_url) as base, \
            aiohttp.ClientSession() as http:
        batch = {"endpoint": "/v1/chat/completions", "completion_window": "24h", "metadata": {"run": "t"},
                 "requests": [{"custom_id": f"c{i}", "body": CHAT} for i in range(3)]}
        async with http.post(base + "/v1/batches", json=batch) as resp:
            assert resp.status == 202
            job = await resp.json()
        done = await _finished(http, base, job["id"])
        assert done["request_counts"] == {"total": 3, "completed": 3, "failed": 0}
        async with http.get(f"{base}/v1/batches/{job['id']}/output") as resp:
            ids = sorted(json.loads(x)["custom_id"] for x in (await resp.text()).splitlines())
        assert ids == ["c0", "c1", "c2"]
        slow = {"endpoint": "/v1/chat/completions", "requests": [{"body": {**CHAT, "max_tokens": 400}}]}
        async with http.post(base + "/v1/batches", json=slow) as resp:
            job = await resp.json()
        for _ in range(200):
            if (await sim.stats())["running"] == 1:
                break
            await asyncio.sleep(0.02)
        async with http.post(f"{base}/v1/batches/{job['id']}/cancel") as resp:
            assert resp.status == 200
        done = await _finished(http, base, job["id"])
        assert done["status"] == "cancelled" and done["request_counts"]["failed"] == 1
        for _ in range(200):  # the upstream request was closed, not left running
            if (await sim.stats())["aborted_requests"] == 1:
                break
            await asyncio.sleep(0.02)
        assert (await sim.stats())["aborted_requests"] == 1


async def test_bad_deferred_input_is_a_400() -> None:
    async with running_sim("fast", seed=11) as sim, gateway(sim.base_url) as base, aiohttp.ClientSession() as http:
        defer = {"x-tokenyard-defer": "true"}
        cases = [
            ("/v1/chat/completions", {**CHAT, "stream": True}, defer),
            ("/v1/chat/completions", CHAT, {**defer, "x-tokenyard-class": "premium"}),
            ("/v1/batches", {"endpoint": "/v1/embeddings", "requests": [{"body": {}}]}, {}),
            ("/v1/batches", {"endpoint": "/v1/completions", "requests": []}, {}),
            ("/v1/batches", {"endpoint": "/v1/completions", "requests": [{"body": 1}]}, {}),
            ("/v1/batches", {"endpoint": "/v1/completions", "completion_window": "2d",
                             "requests": [{"body": {}}]}, {}),
        ]
        for path, body, headers in cases:
            async with http.post(base + path, json=body, headers=headers) as resp:
                assert resp.status == 400, (path, body)
                assert (await resp.json())["error"]["message"]
        async with http.get(base + "/v1/batches/batch_nope") as resp:
            assert resp.status == 404
