"""Exact cache, streams replayed as SSE, tenant isolation, coalescing and embedding batching, on real HTTP."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from aiohttp import web

from tests.integration.gateway.helpers import gateway_for, metric_value
from tests.integration.loopback_app import serving
from tokenyard.sim.testing import running_sim

CACHE: dict[str, Any] = {"cache": {"enabled": True, "store": "memory"}}
TENANTS: dict[str, Any] = {
    "keys": [{"key": "sk-a", "tenant": "a"}, {"key": "sk-b", "tenant": "b"}],
    "tenants": {"a": {}, "b": {}},
}


def body(text: str, stream: bool = False, temperature: float = 0.0) -> dict[str, Any]:
    return {"model": "sim-fast", "messages": [{"role": "user", "content": text}], "max_tokens": 8,
            "temperature": temperature, "stream": stream}


async def post(session: aiohttp.ClientSession, url: str, payload: dict[str, Any],
               headers: dict[str, str] | None = None) -> tuple[int, bytes, str]:
    async with session.post(url + "/v1/chat/completions", json=payload, headers=headers) as resp:
        return resp.status, await resp.read(), resp.headers.get("x-tokenyard-cache", "")


async def test_a_deterministic_answer_is_served_from_the_cache() -> None:
    async with running_sim("fast", seed=1) as sim, gateway_for([sim], **CACHE) as gw, \
            aiohttp.ClientSession() as session:
        first = await post(session, gw.base_url, body("what is two plus two"))
        second = await post(session, gw.base_url, body("what is two plus two"))
        assert first[0] == second[0] == 200
        assert (first[2], second[2]) == ("miss", "hit")
        assert first[1] == second[1]
        assert (await sim.stats())["completed_requests"] == 1
        assert metric_value(gw, "tokenyard_cache_requests_total", {"kind": "exact", "result": "hit"}) == 1
        assert metric_value(gw, "tokenyard_cache_tokens_saved_total", {"kind": "exact"}) > 0
        assert metric_value(gw, "tokenyard_requests_total",
                            {"model": "sim-fast", "class": "standard", "outcome": "cached"}) == 1


async def test_sampled_requests_bypass_unless_opted_in() -> None:
    async with running_sim("fast", seed=1) as sim, gateway_for([sim], **CACHE) as gw, \
            aiohttp.ClientSession() as session:
        for _ in range(2):
            status, _, label = await post(session, gw.base_url, body("tell me a story", temperature=0.8))
            assert (status, label) == (200, "bypass")
        assert (await sim.stats())["completed_requests"] == 2
        opt_in = {"x-tokenyard-cache": "on"}
        labels = [(await post(session, gw.base_url, body("tell me a story", temperature=0.8), opt_in))[2]
                  for _ in range(2)]
        assert labels == ["miss", "hit"]
        off = await post(session, gw.base_url, body("what is two plus two"), {"x-tokenyard-cache": "off"})
        assert off[2] == "bypass"


async def test_a_cached_stream_is_replayed_as_sse_with_ids() -> None:
    async with running_sim("fast", seed=1) as sim, gateway_for([sim], **CACHE) as gw, \
            aiohttp.ClientSession() as session:
        live = await post(session, gw.base_url, body("stream me", stream=True))
        again = await post(session, gw.base_url, body("stream me", stream=True))
        assert (live[2], again[2]) == ("miss", "hit")
        assert live[1] == again[1]
        events = [e for e in again[1].split(b"\n\n") if e]
        assert all(e.startswith(b"id: ") for e in events)
        assert events[-1].endswith(b"data: [DONE]")
        whole = await post(session, gw.base_url, body("stream me"))
        assert whole[2] == "miss"  # a whole answer is cached apart from the stream


async def test_one_tenant_never_reads_another_tenants_entry() -> None:
    async with running_sim("fast", seed=1) as sim, gateway_for([sim], **CACHE, **TENANTS) as gw, \
            aiohttp.ClientSession() as session:
        a = {"Authorization": "Bearer sk-a"}
        b = {"Authorization": "Bearer sk-b"}
        assert (await post(session, gw.base_url, body("secret"), a))[2] == "miss"
        assert (await post(session, gw.base_url, body("secret"), b))[2] == "miss"
        assert (await post(session, gw.base_url, body("secret"), a))[2] == "hit"
        assert (await sim.stats())["completed_requests"] == 2


async def test_identical_concurrent_requests_share_one_upstream_call() -> None:
    async with running_sim("fast", seed=1, ttft_ms=300) as sim, gateway_for([sim], **CACHE) as gw, \
            aiohttp.ClientSession() as session:
        whole = await asyncio.gather(*(post(session, gw.base_url, body("same question")) for _ in range(8)))
        streams = await asyncio.gather(*(post(session, gw.base_url, body("same stream", stream=True))
                                         for _ in range(8)))
        assert {r[0] for r in whole + streams} == {200}
        assert len({r[1] for r in whole}) == 1
        assert len({r[1] for r in streams}) == 1  # late joiners replayed what was sent, then followed live
        assert sorted(r[2] for r in whole).count("coalesced") == 7
        assert sorted(r[2] for r in streams).count("coalesced") == 7
        assert (await sim.stats())["completed_requests"] == 2


@asynccontextmanager
async def counting_embedder() -> AsyncIterator[tuple[str, list[int]]]:
    """A real HTTP embeddings server: each input's vector is [len(input), position]; counts calls' sizes."""
    calls: list[int] = []

    async def embeddings(request: web.Request) -> web.Response:
        payload = await request.json()
        inputs = payload["input"] if isinstance(payload["input"], list) else [payload["input"]]
        calls.append(len(inputs))
        await asyncio.sleep(0.02)
        data = [{"object": "embedding", "index": i, "embedding": [float(len(t)), float(i)]}
                for i, t in enumerate(inputs)]
        usage = {"prompt_tokens": 2 * len(inputs), "total_tokens": 2 * len(inputs)}
        return web.json_response({"object": "list", "data": data, "model": payload["model"], "usage": usage})

    async def models(request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "emb", "object": "model"}]})

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_post("/v1/embeddings", embeddings)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/health", health)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}", calls
    finally:
        await runner.cleanup()


async def test_small_embedding_requests_are_batched_and_split_back() -> None:
    batching: dict[str, Any] = {"cache": {"enabled": True, "store": "memory", "embed_batch_window_ms": 50}}
    async with counting_embedder() as (url, calls), aiohttp.ClientSession() as session:
        class Upstream:
            base_url = url

        async with gateway_for([Upstream()], **batching) as gw:  # type: ignore[list-item]  # duck-typed upstream
            async def embed(text: str | list[str]) -> dict[str, Any]:
                async with session.post(gw.base_url + "/v1/embeddings",
                                        json={"model": "emb", "input": text}) as resp:
                    assert resp.status == 200, await resp.text()
                    result: dict[str, Any] = await resp.json()
                    return result

            texts: list[str | list[str]] = ["a", "bb", ["ccc", "dddd"], "eeeee"]
            answers = await asyncio.gather(*(embed(t) for t in texts))
        assert calls == [5]
        for text, answer in zip(texts, answers, strict=True):
            wanted = [text] if isinstance(text, str) else text
            assert [row["index"] for row in answer["data"]] == list(range(len(wanted)))
            assert [row["embedding"][0] for row in answer["data"]] == [float(len(t)) for t in wanted]
            assert answer["usage"]["prompt_tokens"] == 2 * len(wanted)


async def aborted_requests(sim: Any, want: int) -> int:
    aborted = 0
    for _ in range(100):  # the simulator notices a closed connection on its own schedule
        aborted = int((await sim.stats())["aborted_requests"])
        if aborted >= want:
            break
        await asyncio.sleep(0.05)
    return aborted


async def test_the_leaders_client_leaving_does_not_end_the_followers_stream() -> None:
    async with running_sim("fast", seed=1, itl_ms=10) as sim, gateway_for([sim], **CACHE) as gw, \
            aiohttp.ClientSession() as session:
        payload = {**body("long shared stream", stream=True), "max_tokens": 100}
        leader = await session.post(gw.base_url + "/v1/chat/completions", json=payload)
        await leader.content.readline()  # the leader's stream is live
        followers = [asyncio.create_task(post(session, gw.base_url, payload)) for _ in range(2)]
        await asyncio.sleep(0.2)
        leader.close()  # the leader's client leaves: the followers still read the shared upstream call
        answers = await asyncio.wait_for(asyncio.gather(*followers), 30)
        for status, raw, label in answers:
            assert (status, label) == (200, "coalesced")
            assert b"event: error" not in raw and raw.rstrip().endswith(b"data: [DONE]")
            assert raw.count(b'"content":') == 101  # the role chunk, then every one of the 100 tokens
        assert answers[0][1] == answers[1][1]
        stats = await sim.stats()
        assert stats["completed_requests"] == 1 and stats["aborted_requests"] == 0  # generated once, not cut
        replayed = await post(session, gw.base_url, payload)  # the complete stream was stored
        assert replayed[2] == "hit" and replayed[1] == answers[0][1]
        assert metric_value(gw, "tokenyard_requests_total",
                            {"model": "sim-fast", "class": "standard", "outcome": "client_aborted"}) == 1


async def test_the_upstream_stops_when_the_leader_and_every_follower_left() -> None:
    async with running_sim("fast", seed=1, itl_ms=10) as sim, gateway_for([sim], **CACHE) as gw, \
            aiohttp.ClientSession() as session:
        payload = {**body("nobody stays", stream=True), "max_tokens": 2000}
        leader = await session.post(gw.base_url + "/v1/chat/completions", json=payload)
        await leader.content.readline()
        follower = await session.post(gw.base_url + "/v1/chat/completions", json=payload)
        await follower.content.readline()
        leader.close()
        await asyncio.sleep(0.2)
        assert (await sim.stats())["aborted_requests"] == 0  # still generating for the follower
        follower.close()
        assert await aborted_requests(sim, 1) == 1  # no zombie generation for nobody
        assert (await sim.stats())["completed_requests"] == 0


async def test_followers_get_an_error_event_when_the_shared_upstream_dies() -> None:
    async with running_sim("fast", seed=1, itl_ms=10, faults={"drop_after_tokens": 20}) as sim, \
            gateway_for([sim], **CACHE) as gw, aiohttp.ClientSession() as session:
        payload = {**body("a stream that breaks", stream=True), "max_tokens": 100}
        answers = await asyncio.wait_for(asyncio.gather(*(post(session, gw.base_url, payload) for _ in range(3))),
                                         30)
        for status, raw, _ in answers:
            assert status == 200
            assert b"event: error" in raw and b"[DONE]" not in raw
        assert sorted(label for _, _, label in answers) == ["coalesced", "coalesced", "miss"]


async def test_a_degraded_answer_is_never_stored_for_the_request_it_was_not() -> None:
    admin = {"Authorization": "Bearer admin-key"}
    async with running_sim("fast", seed=1) as sim, gateway_for([sim], admin={"key": "admin-key"}, **CACHE) as gw, \
            aiohttp.ClientSession() as session:
        async def pin(level: int | None) -> None:
            async with session.post(gw.base_url + "/admin/degradation", json={"level": level}, headers=admin) as r:
                assert r.status == 200, await r.text()

        await pin(3)  # standard traffic answers concisely (an instruction is added to the prompt)
        async with session.post(gw.base_url + "/v1/chat/completions", json=body("explain tides")) as resp:
            assert resp.status == 200 and resp.headers["x-tokenyard-degraded"] == "concise"
            degraded = await resp.json()
        await pin(None)
        status, answer, label = await post(session, gw.base_url, body("explain tides"))
        assert (status, label) == (200, "miss")  # not the degraded answer
        assert json.loads(answer)["usage"]["prompt_tokens"] < degraded["usage"]["prompt_tokens"]  # no instruction
        assert (await post(session, gw.base_url, body("explain tides")))[2] == "hit"  # the full answer is stored
        assert (await sim.stats())["completed_requests"] == 2


async def test_a_stream_asking_for_usage_is_not_answered_by_one_that_did_not() -> None:
    async with running_sim("fast", seed=1) as sim, gateway_for([sim], **CACHE) as gw, \
            aiohttp.ClientSession() as session:
        plain = body("count my tokens", stream=True)
        with_usage = {**plain, "stream_options": {"include_usage": True}}
        status, raw, label = await post(session, gw.base_url, plain)
        assert (status, label) == (200, "miss") and b'"usage":{' not in raw
        status, raw, label = await post(session, gw.base_url, with_usage)
        assert (status, label) == (200, "miss") and b'"usage":{' in raw  # its own answer, with the usage chunk
        assert (await post(session, gw.base_url, with_usage))[2] == "hit"
        # A whole answer has no stream options to honour: they do not split its entry.
        whole = body("count my tokens")
        assert (await post(session, gw.base_url, whole))[2] == "miss"
        assert (await post(session, gw.base_url, {**whole, "stream_options": None}))[2] == "hit"


async def test_models_never_share_an_entry_while_the_pass_through_models_are_unknown() -> None:
    async def models(request: web.Request) -> web.Response:
        return web.json_response({"error": {"message": "not here"}}, status=500)  # no model list: names unknown

    async def chat(request: web.Request) -> web.Response:
        model = (await request.json())["model"]
        return web.json_response({
            "id": "c", "object": "chat.completion", "created": 0, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": f"I am {model}"},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 3, "total_tokens": 4}})

    app = web.Application()
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/chat/completions", chat)
    async with serving(app) as url, aiohttp.ClientSession() as session:
        class Upstream:
            base_url = url

        async with gateway_for([Upstream()], **CACHE) as gw:  # type: ignore[list-item]  # duck-typed upstream
            first = await post(session, gw.base_url, {**body("who are you"), "model": "model-a"})
            second = await post(session, gw.base_url, {**body("who are you"), "model": "model-b"})
            assert (first[2], second[2]) == ("miss", "miss")
            assert b"I am model-b" in second[1]
            assert (await post(session, gw.base_url, {**body("who are you"), "model": "model-a"}))[2] == "hit"
