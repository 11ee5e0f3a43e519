"""East-west hops through the gateway: retrieval failover independent of the model tier, tools, deadline
propagation and workflow durations."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from aiohttp import web

from tests.integration.loopback_app import serving
from tests.integration.routing.helpers import chat, metric, post, routing_config
from tokenyard.gateway.app import running_gateway
from tokenyard.sim.services import RetrievalSim, ServiceParams
from tokenyard.sim.testing import running_sim


@contextlib.asynccontextmanager
async def retrieval_sim(seed: int) -> AsyncIterator[RetrievalSim]:
    sim = RetrievalSim(ServiceParams(seed=seed, base_ms=2.0, per_item_ms=0.1))
    await sim.start("127.0.0.1", 0)
    try:
        yield sim
    finally:
        await sim.stop()


@contextlib.asynccontextmanager
async def echo_tool(seen: list[dict[str, str]]) -> AsyncIterator[str]:
    """A tool service that records the headers it got (to see the propagated deadline). It has no ``/health``
    route: a 404 to the active check still proves it is up, so it stays routable."""

    async def call(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        return web.json_response({"tool": request.match_info["name"], "result": {"ok": True}})

    app = web.Application()
    app.router.add_post("/v1/tools/{name}", call)
    async with serving(app) as base_url:
        yield base_url + "/v1"


async def set_faults(session: aiohttp.ClientSession, base_url: str, **fields: Any) -> None:
    async with session.post(base_url + "/sim/faults", json=fields) as resp:
        assert resp.status == 200


async def test_retrieval_and_model_tiers_fail_over_independently() -> None:
    async with contextlib.AsyncExitStack() as stack:
        llm = await stack.enter_async_context(running_sim("fast", seed=1))
        primary = await stack.enter_async_context(retrieval_sim(1))
        backup = await stack.enter_async_context(retrieval_sim(2))
        config = routing_config(
            {"chat": {"endpoints": [{"url": llm.base_url + "/v1", "name": "llm"}], "upstream_model": llm.model},
             "docs": {"kind": "retrieval", "endpoints": [{"url": primary.base_url + "/v1", "name": "docs-a"}],
                      "fallback": ["docs-backup"]},
             "docs-backup": {"kind": "retrieval", "endpoints": [{"url": backup.base_url + "/v1", "name": "docs-b"}]}},
            routing={"eastwest": {"retrieval_pool": "docs"}},
        )
        gw = await stack.enter_async_context(running_gateway(config))
        session = await stack.enter_async_context(aiohttp.ClientSession())
        query = {"query": "how do I reset my password", "top_k": 3}

        async def retrieve() -> tuple[int, dict[str, Any], dict[str, str]]:
            async with session.post(gw.base_url + "/v1/retrieve", json=query) as resp:
                return resp.status, await resp.json(), dict(resp.headers)

        status, answer, headers = await retrieve()
        assert status == 200 and len(answer["documents"]) == 3 and headers["x-tokenyard-retrieval"] == "hit"
        assert headers["x-tokenyard-backend"] == "docs-a"

        # Retrieval outage: the fallback index answers; the model tier is untouched.
        await set_faults(session, primary.base_url, error_rate=1.0, error_status=503)
        for _ in range(3):
            status, answer, headers = await retrieve()
            assert status == 200 and headers["x-tokenyard-retrieval"] == "fallback" and answer["documents"]
            assert (await post(session, gw, chat("chat")))[0] == 200
        # Both indexes down: answer without retrieval, flagged and counted.
        await set_faults(session, backup.base_url, error_rate=1.0, error_status=500)
        status, answer, headers = await retrieve()
        assert status == 200 and headers["x-tokenyard-retrieval"] == "skipped" and answer["documents"] == []
        assert (await post(session, gw, chat("chat")))[0] == 200
        assert metric(gw, "tokenyard_retrieval_requests_total", {"outcome": "fallback"}) == 4
        assert metric(gw, "tokenyard_retrieval_requests_total", {"outcome": "hit"}) == 1
        assert (await llm.stats())["completed_requests"] == 4

        # The reverse: the model tier fails, retrieval is untouched.
        await set_faults(session, primary.base_url, clear=True)
        await set_faults(session, backup.base_url, clear=True)
        await llm.set_faults(error_rate=1.0, error_status=503)
        assert (await post(session, gw, chat("chat")))[0] >= 500
        for _ in range(3):
            status, answer, headers = await retrieve()
            assert status == 200 and headers["x-tokenyard-retrieval"] in ("hit", "fallback")
        assert headers["x-tokenyard-retrieval"] == "hit"  # the primary index is back in rotation


async def test_tool_hop_gets_the_remaining_deadline_and_workflows_are_timed() -> None:
    seen: list[dict[str, str]] = []
    async with contextlib.AsyncExitStack() as stack:
        tool_url = await stack.enter_async_context(echo_tool(seen))
        llm = await stack.enter_async_context(running_sim("fast", seed=1))
        config = routing_config(
            {"chat": {"endpoints": [{"url": llm.base_url + "/v1"}], "upstream_model": llm.model},
             "tools": {"kind": "tool", "endpoints": [{"url": tool_url, "name": "tools"}]}},
        )
        gw = await stack.enter_async_context(running_gateway(config))
        session = await stack.enter_async_context(aiohttp.ClientSession())
        flow = {"x-tokenyard-workflow-id": "wf-1", "x-tokenyard-workflow-name": "agent"}
        async with session.post(gw.base_url + "/v1/tools/lookup", json={"id": 7},
                                headers={**flow, "x-tokenyard-deadline-ms": "5000"}) as resp:
            assert resp.status == 200 and (await resp.json())["tool"] == "lookup"
        remaining = int(seen[0]["x-tokenyard-deadline-ms"])
        assert 0 < remaining <= 5000
        assert seen[0]["x-tokenyard-workflow-id"] == "wf-1"
        status, _, _ = await post(session, gw, chat("chat"), {**flow, "x-tokenyard-workflow-end": "true"})
        assert status == 200
        assert metric(gw, "tokenyard_workflow_duration_seconds_count", {"workflow": "agent"}) == 1
        # Bad input is a 4xx in OpenAI's format; an unknown tool pool is 404 only when none is configured.
        async with session.post(gw.base_url + "/v1/tools/lookup", data=b"[1, 2]",
                                headers={"Content-Type": "application/json"}) as resp:
            assert resp.status == 400 and "error" in await resp.json()
        async with session.post(gw.base_url + "/v1/retrieve", json={"query": "x"}) as resp:
            assert resp.status == 404 and "error" in await resp.json()
        deep = b"[" * 100_000 + b"]" * 100_000  # past msgspec's depth limit: RecursionError was a 500
        async with session.post(gw.base_url + "/v1/tools/lookup", data=deep,
                                headers={"Content-Type": "application/json"}) as resp:
            assert resp.status == 400 and (await resp.json())["error"]["code"] == "invalid_json"


async def test_compress_retrieval_caps_top_k_of_retrieval_hops() -> None:
    """docs/admission.md §7: at level 1 ``compress_retrieval`` caps a retrieval call's ``top_k`` at ``top_k_cap``;
    premium lags the ladder by one level. (Retrieval hops were never degraded: 8 documents at level 4.)"""
    async with contextlib.AsyncExitStack() as stack:
        index = await stack.enter_async_context(retrieval_sim(1))
        config = routing_config({"docs": {"kind": "retrieval", "endpoints": [{"url": index.base_url + "/v1"}]}},
                                degradation={"top_k_cap": 2})
        gw = await stack.enter_async_context(running_gateway(config))
        session = await stack.enter_async_context(aiohttp.ClientSession())

        async def retrieve(klass: str, body: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
            async with session.post(gw.base_url + "/v1/retrieve", json=body,
                                    headers={"x-tokenyard-class": klass}) as resp:
                return resp.status, await resp.json(), dict(resp.headers)

        def compressed() -> float:
            return metric(gw, "tokenyard_degradation_actions_total", {"action": "compress_retrieval"})

        query = {"query": "how do I reset my password", "top_k": 8}
        status, answer, headers = await retrieve("standard", query)
        assert status == 200 and len(answer["documents"]) == 8 and "x-tokenyard-degraded" not in headers
        async with session.post(gw.base_url + "/admin/degradation", json={"level": 1}) as resp:
            assert resp.status == 200
        status, answer, headers = await retrieve("standard", query)
        assert status == 200 and len(answer["documents"]) == 2
        assert headers["x-tokenyard-degraded"] == "compress_retrieval" and compressed() == 1
        status, answer, headers = await retrieve("standard", {"query": "no top_k given"})  # the sim's default is 5
        assert status == 200 and len(answer["documents"]) == 2 and compressed() == 2
        status, answer, headers = await retrieve("standard", {"query": "already small", "top_k": 1})
        assert len(answer["documents"]) == 1 and "x-tokenyard-degraded" not in headers and compressed() == 2
        status, answer, headers = await retrieve("premium", query)  # premium sees level 0
        assert status == 200 and len(answer["documents"]) == 8 and "x-tokenyard-degraded" not in headers
        deep = b"[" * 100_000 + b"]" * 100_000  # past msgspec's depth limit: RecursionError was a 500
        async with session.post(gw.base_url + "/v1/retrieve", data=deep,
                                headers={"Content-Type": "application/json"}) as resp:
            assert resp.status == 400 and (await resp.json())["error"]["code"] == "invalid_json"
