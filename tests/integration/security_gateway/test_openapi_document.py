"""``/openapi.json`` says what the validator does: every numeric range in the request schemas is checked against
``tokenyard.schema`` at its bounds, and the document is served by a live gateway with the admin routes in it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.integration.security_gateway.helpers import gateway_config
from tokenyard.config import LimitsConfig
from tokenyard.gateway.app import running_gateway
from tokenyard.gateway.openapi import build_document
from tokenyard.schema import ParsedRequest, RequestInvalid, parse_chat, parse_completion, parse_embedding
from tokenyard.sim.testing import running_sim

LIMITS = LimitsConfig(max_messages=8, max_message_chars=100)
BASES: dict[str, tuple[Callable[[bytes, LimitsConfig | None], ParsedRequest], dict[str, Any]]] = {
    "ChatCompletionRequest": (parse_chat, {"model": "m", "messages": [{"role": "user", "content": "hi"}],
                                           "logprobs": True}),
    "CompletionRequest": (parse_completion, {"model": "m", "prompt": "hi"}),
    "EmbeddingRequest": (parse_embedding, {"model": "m", "input": "hi"}),
}


def _ranges(schema: dict[str, Any]) -> list[tuple[str, str, float, float]]:
    found = []
    for name, prop in schema["properties"].items():
        for option in prop.get("anyOf", [prop]):
            if "minimum" in option and "maximum" in option:
                found.append((name, option["type"], option["minimum"], option["maximum"]))
    return found


def _accepts(parse: Callable[[bytes, LimitsConfig | None], ParsedRequest], body: dict[str, Any]) -> bool:
    try:
        parse(json.dumps(body).encode(), LIMITS)
    except RequestInvalid:
        return False
    return True


def _document() -> dict[str, Any]:
    return build_document(web.Application(), LIMITS)


@pytest.mark.parametrize("name", sorted(BASES))
def test_numeric_ranges_match_the_validator(name: str) -> None:
    parse, base = BASES[name]
    ranges = _ranges(_document()["components"]["schemas"][name])
    assert ranges
    for param, kind, low, high in ranges:
        step = 1 if kind == "integer" else 0.5
        for value, ok in ((low, True), (high, True), (low - step, False), (high + step, False)):
            body = {**base, param: value}
            assert _accepts(parse, body) is ok, (name, param, value)


def test_size_limits_come_from_the_config() -> None:
    chat = _document()["components"]["schemas"]["ChatCompletionRequest"]["properties"]
    assert chat["messages"]["maxItems"] == LIMITS.max_messages
    parse, base = BASES["ChatCompletionRequest"]
    many = [{"role": "user", "content": "x"}] * (LIMITS.max_messages + 1)
    assert not _accepts(parse, {**base, "messages": many})
    assert _accepts(parse, {**base, "messages": many[:-1]})
    assert not _accepts(parse, {**base, "messages": [{"role": "user", "content": "x" * 101}]})


async def test_served_document_lists_every_route(tmp_path: Path) -> None:
    sections = {"tenants": {"acme": {"class": "standard"}}, "keys": [{"key": "sk", "tenant": "acme"}],
                "admin": {"key": "adm"}}
    async with running_sim("fast") as sim, running_gateway(gateway_config(sim, tmp_path, **sections)) as gw, \
            aiohttp.ClientSession() as session, session.get(gw.base_url + "/openapi.json") as resp:
        assert resp.status == 200
        document = await resp.json()
    assert document["openapi"] == "3.1.0"
    paths = document["paths"]
    for path in ("/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/models", "/healthz",
                 "/admin/requests", "/admin/requests/{request_id}/abort"):
        assert path in paths, path
    chat = paths["/v1/chat/completions"]["post"]
    assert {"400", "401", "403", "404", "413", "429", "503"} <= set(chat["responses"])
    assert paths["/admin/requests"]["get"]["security"] == [{"admin": []}]
