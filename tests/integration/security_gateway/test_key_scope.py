"""A key's own scope on a real gateway: allowed routes (config and key-store keys, inference paths included),
and a key-store key's concurrency limit."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.integration.security_gateway.helpers import chat, gateway_config, models_for, post
from tokenyard.config import ConfigError, parse_config
from tokenyard.gateway.app import RunningGateway, running_gateway
from tokenyard.security.keystore import SqliteKeyStore
from tokenyard.sim.services import RetrievalSim, ServiceParams, ToolSim
from tokenyard.sim.testing import RunningSim, running_sim

EAST_WEST_ROUTES = ["/v1/retrieve", "/v1/tools/*"]


@contextlib.asynccontextmanager
async def services() -> AsyncIterator[tuple[RetrievalSim, ToolSim]]:
    retrieval = RetrievalSim(ServiceParams(seed=1, base_ms=1.0, per_item_ms=0.1))
    tools = ToolSim(ServiceParams(seed=2, base_ms=1.0, per_item_ms=0.1))
    await retrieval.start("127.0.0.1", 0)
    try:
        await tools.start("127.0.0.1", 0)
        try:
            yield retrieval, tools
        finally:
            await tools.stop()
    finally:
        await retrieval.stop()


def scoped_sections(sim: RunningSim, retrieval: RetrievalSim, tools: ToolSim, **extra: Any) -> dict[str, Any]:
    return {
        "models": {**models_for(sim, "model-a"),
                   "docs": {"kind": "retrieval", "endpoints": [{"url": retrieval.base_url + "/v1"}]},
                   "tools": {"kind": "tool", "endpoints": [{"url": tools.base_url + "/v1"}]}},
        "routing": {"eastwest": {"retrieval_pool": "docs"}},
        "tenants": {"acme": {"class": "standard"}},
        "keys": [{"key": "sk-agent", "tenant": "acme", "name": "agent", "routes": EAST_WEST_ROUTES},
                 {"key": "sk-chat", "tenant": "acme", "name": "chatter", "routes": ["/v1/chat/*"]},
                 {"key": "sk-all", "tenant": "acme", "name": "everything"}],
        **extra,
    }


async def _calls(session: aiohttp.ClientSession, url: str, token: str) -> dict[str, tuple[int, dict[str, Any]]]:
    """The status and body of one call to each kind of route."""
    return {
        "chat": await post(session, url, chat("model-a"), token=token),
        "completions": await post(session, url, {"model": "model-a", "prompt": "hi", "max_tokens": 2},
                                  token=token, path="/v1/completions"),
        "retrieve": await post(session, url, {"query": "reset password", "top_k": 2}, token=token,
                               path="/v1/retrieve"),
        "tool": await post(session, url, {"arguments": {"q": "x"}}, token=token, path="/v1/tools/search"),
    }


def _audit_events(tmp_path: Path, event: str) -> list[dict[str, Any]]:
    lines = (tmp_path / "audit.log").read_text().splitlines()
    return [e for e in map(json.loads, lines) if e["event"] == event]


async def class_served(session: aiohttp.ClientSession, gw: RunningGateway, token: str,
                       asked: str | None = None) -> tuple[int, str | None]:
    """Status and ``x-tokenyard-class`` of a chat request with ``token``, asking for class ``asked`` if given."""
    headers = {"Authorization": f"Bearer {token}", **({"x-tokenyard-class": asked} if asked else {})}
    async with session.post(gw.base_url + "/v1/chat/completions", json=chat("model-a"), headers=headers) as resp:
        await resp.read()
        return resp.status, resp.headers.get("x-tokenyard-class")


async def test_routes_limit_config_and_store_keys_on_every_v1_route(tmp_path: Path) -> None:
    store_path = tmp_path / "keys.db"
    store_agent, _ = SqliteKeyStore(store_path).create("acme", name="store-agent", routes=EAST_WEST_ROUTES)
    async with running_sim("fast") as sim, services() as (retrieval, tools):
        sections = scoped_sections(sim, retrieval, tools, key_store={"path": str(store_path)})
        async with running_gateway(gateway_config(sim, tmp_path, **sections)) as gw, \
                aiohttp.ClientSession() as session:
            for token, name in (("sk-agent", "agent"), (store_agent, "store-agent")):
                calls = await _calls(session, gw.base_url, token)
                assert calls["retrieve"][0] == 200, calls["retrieve"]
                assert calls["tool"][0] == 200, calls["tool"]
                for route, path in (("chat", "/v1/chat/completions"), ("completions", "/v1/completions")):
                    status, body = calls[route]
                    assert (status, body["error"]["code"]) == (403, "route_not_allowed"), (name, route, body)
                    assert path in body["error"]["message"] and name in body["error"]["message"]
                async with session.get(gw.base_url + "/v1/models",
                                       headers={"Authorization": f"Bearer {token}"}) as resp:
                    assert resp.status == 403  # every /v1 route, the listing included
            calls = await _calls(session, gw.base_url, "sk-chat")
            assert calls["chat"][0] == 200
            assert [calls[r][0] for r in ("completions", "retrieve", "tool")] == [403, 403, 403]
            assert "/v1/retrieve" in calls["retrieve"][1]["error"]["message"]
            calls = await _calls(session, gw.base_url, "sk-all")  # no routes: every route
            assert {route: status for route, (status, _) in calls.items()} == \
                {"chat": 200, "completions": 200, "retrieve": 200, "tool": 200}
    denied = _audit_events(tmp_path, "access_denied")
    assert {(e["subject"], e["path"]) for e in denied} >= {
        ("agent", "/v1/chat/completions"), ("store-agent", "/v1/completions"), ("chatter", "/v1/tools/search")}
    assert all(e["reason"] == "route not allowed for key" for e in denied)
    assert store_agent not in (tmp_path / "audit.log").read_text()


async def test_store_key_concurrency_limit(tmp_path: Path) -> None:
    store_path = tmp_path / "keys.db"
    store = SqliteKeyStore(store_path)
    single, _ = store.create("acme", name="single", max_concurrency=1)
    sections = {"tenants": {"acme": {"class": "standard"}}, "key_store": {"path": str(store_path)}}
    # Slow tokens keep the first request in flight (seen running at the simulator) while the second arrives.
    async with running_sim("fast", itl_ms=50.0) as sim, \
            running_gateway(gateway_config(sim, tmp_path, **sections)) as gw, aiohttp.ClientSession() as session:
        first = asyncio.create_task(post(session, gw.base_url, chat("model-a", max_tokens=60), token=single))
        for _ in range(200):
            if (await sim.stats())["running"] >= 1:
                break
            await asyncio.sleep(0.02)
        status, body = await post(session, gw.base_url, chat("model-a"), token=single)
        assert (status, body["error"]["code"]) == (429, "concurrency"), body
        assert "key:single" in body["error"]["message"]
        assert (await first)[0] == 200
        # The slot is given back when the first request ends.
        assert (await post(session, gw.base_url, chat("model-a"), token=single))[0] == 200


def test_config_route_patterns_must_be_paths() -> None:
    document = {"listen": {"host": "127.0.0.1", "port": 0},
                "models": {"m": {"endpoints": [{"url": "http://127.0.0.1:9/v1"}]}},
                "tenants": {"acme": {"class": "standard"}},
                "keys": [{"key": "sk-1", "tenant": "acme", "routes": ["/v1/retrieve", "v1/tools/*"]}]}
    with pytest.raises(ConfigError) as caught:
        parse_config(document, env={})
    assert [path for path, _ in caught.value.issues] == ["keys[0].routes[1]"]
    document["keys"] = [{"key": "sk-1", "tenant": "acme", "routes": ["/v1/tools/*"]}]
    assert parse_config(document, env={}).keys[0].routes == ("/v1/tools/*",)


async def test_a_key_held_to_some_classes_does_not_get_its_tenants_class_by_asking_for_none(tmp_path: Path) -> None:
    store_path = tmp_path / "keys.db"
    stored, _ = SqliteKeyStore(store_path).create("acme", name="stored-batch", classes=["batch", "standard"])
    sections = {
        "classes": {"premium": {"priority": 0}, "standard": {"priority": 1}, "batch": {"priority": 2}},
        "tenants": {"acme": {"class": "premium", "classes": ["premium", "standard", "batch"]}},
        "keys": [{"key": "sk-batch", "tenant": "acme", "name": "batch-only", "classes": ["batch"]},
                 {"key": "sk-any", "tenant": "acme", "name": "any"}],
        "key_store": {"path": str(store_path)},
    }
    async with running_sim("fast") as sim, running_gateway(gateway_config(sim, tmp_path, **sections)) as gw, \
            aiohttp.ClientSession() as session:
        async def klass(token: str, asked: str | None = None) -> tuple[int, str | None]:
            return await class_served(session, gw, token, asked)

        assert await klass("sk-batch") == (200, "batch")  # was premium: the tenant's class
        assert (await klass("sk-batch", "premium"))[0] == 403
        assert await klass(stored) == (200, "batch")  # the first of the key's classes
        assert await klass(stored, "standard") == (200, "standard")
        assert await klass("sk-any") == (200, "premium")  # no classes of its own: the tenant's class



async def test_a_store_key_cannot_widen_its_tenants_classes(tmp_path: Path) -> None:
    store = SqliteKeyStore(tmp_path / "keys.db")
    wide, _ = store.create("hobby", name="wide", classes=["premium", "standard"])
    none_left, _ = store.create("hobby", name="none-left", classes=["premium"])
    sections = {
        "classes": {"premium": {"priority": 0}, "standard": {"priority": 1}, "batch": {"priority": 2}},
        "tenants": {"hobby": {"class": "batch", "classes": ["standard", "batch"]}},
        "key_store": {"path": str(tmp_path / "keys.db")},
    }
    async with running_sim("fast") as sim, running_gateway(gateway_config(sim, tmp_path, **sections)) as gw, \
            aiohttp.ClientSession() as session:
        async def klass(token: str, asked: str | None = None) -> tuple[int, str | None]:
            return await class_served(session, gw, token, asked)

        # keys create cannot see the config: a config key like these would have been refused at load.
        assert (await klass(wide, "premium"))[0] == 403
        assert await klass(wide, "standard") == (200, "standard")
        assert await klass(wide) == (200, "standard")
        assert (await klass(none_left, "premium"))[0] == 403
        assert await klass(none_left) == (200, "batch")  # nothing of its own left: the tenant's class
