"""Per-class max_tokens caps and per-kind model pools, through a real gateway in front of the simulator."""

from __future__ import annotations

from typing import Any

import aiohttp

from tests.integration.gateway.helpers import chat_body
from tests.integration.gateway.upstream_double import FixedUpstream
from tokenyard.config import parse_config
from tokenyard.gateway.app import running_gateway
from tokenyard.sim.testing import RunningSim, running_sim

KEY = {"Authorization": "Bearer sk-acme"}


def capped_config(sim: RunningSim) -> Any:
    return parse_config({
        "listen": {"port": 0}, "access_log": {"enabled": False},
        "models": {"chat": {"endpoints": [{"url": sim.base_url + "/v1"}], "upstream_model": sim.model}},
        "classes": {"standard": {"priority": 1}, "batch": {"priority": 2, "max_tokens_cap": 50}},
        "keys": [{"key": "sk-acme", "tenant": "acme"}],
        "tenants": {"acme": {"class": "standard", "classes": ["standard", "batch"], "tpm": 100_000}},
    }, env={})


async def _completion_tokens(session: aiohttp.ClientSession, url: str, path: str, body: dict[str, Any],
                             klass: str) -> tuple[int, int]:
    """(completion tokens the upstream generated, x-ratelimit-remaining-tokens) of one request."""
    async with session.post(url + path, json=body, headers={**KEY, "x-tokenyard-class": klass}) as resp:
        assert resp.status == 200, await resp.text()
        if body.get("stream"):
            text = (await resp.read()).decode()
            usage = [line for line in text.splitlines() if '"usage":{' in line][-1]
            tokens = int(usage.split('"completion_tokens":')[1].split(",")[0].split("}")[0])
        else:
            tokens = (await resp.json())["usage"]["completion_tokens"]
        return tokens, int(resp.headers["x-ratelimit-remaining-tokens"])


async def test_class_max_tokens_cap_is_applied_and_counted() -> None:
    async with running_sim("fast", output_len=120) as sim, running_gateway(capped_config(sim)) as gw, \
            aiohttp.ClientSession() as session:
        chat = "/v1/chat/completions"
        plain = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
        cases: list[tuple[str, dict[str, Any], str, int]] = [
            (chat, {**plain, "max_tokens": 500}, "batch", 50),
            (chat, {**plain, "max_completion_tokens": 500}, "batch", 50),
            (chat, {**plain, "max_tokens": 500, "stream": True, "stream_options": {"include_usage": True}},
             "batch", 50),
            (chat, plain, "batch", 50),  # no limit given: the cap is the limit
            (chat, {**plain, "max_tokens": 7}, "batch", 7),  # below the cap: untouched
            (chat, {**plain, "max_tokens": 500}, "standard", 500),  # a class without a cap
            ("/v1/completions", {"model": "chat", "prompt": "hi", "max_tokens": 500}, "batch", 50),
            ("/v1/completions", {"model": "chat", "prompt": "hi"}, "batch", 50),
        ]
        spent_at_most = 0
        for path, body, klass, expected in cases:
            spent_at_most += expected + 20  # this request's output plus a small prompt estimate
            tokens, remaining = await _completion_tokens(session, gw.base_url, path, body, klass)
            assert tokens == expected, (path, body, klass)
            # The tenant's token limit was charged the capped value, not the 500 asked for.
            assert 100_000 - remaining <= spent_at_most, (path, body, remaining)


async def test_operation_must_match_the_pool_kind() -> None:
    async with running_sim("fast") as sim, FixedUpstream().running() as double, aiohttp.ClientSession() as session:
        config = parse_config({
            "listen": {"port": 0}, "access_log": {"enabled": False},
            "models": {"chat": {"endpoints": [{"url": double.base_url + "/v1"}]},
                       "emb": {"endpoints": [{"url": double.base_url + "/v1"}], "kind": "embedding"},
                       "only-chat": {"endpoints": [{"url": sim.base_url + "/v1"}], "kind": "chat",
                                     "upstream_model": sim.model}},
        }, env={})
        async with running_gateway(config) as gw:
            cases = [
                ("/v1/chat/completions", chat_body("emb", 3, stream=False)),
                ("/v1/chat/completions", chat_body("emb", 3, stream=True)),
                ("/v1/completions", {"model": "emb", "prompt": "hi", "max_tokens": 3}),
                ("/v1/completions", {"model": "only-chat", "prompt": "hi", "max_tokens": 3}),
                ("/v1/embeddings", {"model": "chat", "input": "hi"}),
            ]
            for path, body in cases:
                async with session.post(gw.base_url + path, json=body) as resp:
                    assert resp.status == 404, (path, body)
                    assert resp.content_type == "application/json"
                    error = (await resp.json())["error"]
                assert error["code"] == "model_not_found" and error["param"] == "model", error
                assert f"'{body['model']}'" in error["message"] and path in error["message"], error
            assert double.posts == 0  # refused before any upstream work
            async with session.post(gw.base_url + "/v1/chat/completions", json=chat_body("only-chat", 3, False)) \
                    as resp:
                assert resp.status == 200
            async with session.get(gw.base_url + "/v1/models") as resp:
                assert resp.status == 200
                assert [m["id"] for m in (await resp.json())["data"]] == ["chat", "emb", "only-chat"]
