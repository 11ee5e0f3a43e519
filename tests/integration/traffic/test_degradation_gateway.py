"""The degradation ladder through the real gateway: each action is visible in the request the upstream receives
(a recording upstream), named in ``x-tokenyard-degraded``, counted, and the admin pin drives the level."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest

from tests.integration.traffic.admission_helpers import (
    ADMIN,
    Recorder,
    chat,
    fixed_limit,
    inflight,
    sim_url,
    traffic_config,
    until,
)
from tokenyard.config import parse_config
from tokenyard.gateway.app import RunningGateway, running_gateway
from tokenyard.sim.testing import running_sim

pytestmark = pytest.mark.timeout(60)

TOOLS = [{"type": "function", "function": {"name": name, "parameters": {"type": "object"}}}
         for name in ("search", "calendar", "mail")]


def config(big: Recorder, small: Recorder) -> Any:
    return parse_config({
        "listen": {"host": "127.0.0.1", "port": 0},
        "admin": {"key": "admin-secret"},
        "models": {
            "chat": {"endpoints": [{"url": big.base_url + "/v1"}], "fallback": ["chat-small"]},
            "chat-small": {"endpoints": [{"url": small.base_url + "/v1"}], "upstream_model": "tiny-1b"},
        },
        "admission": {"scrape": False},
        "access_log": {"enabled": False},
    }, env={})


@asynccontextmanager
async def serving(big: Recorder, small: Recorder) -> AsyncIterator[tuple[RunningGateway, aiohttp.ClientSession]]:
    async with big.running(), small.running(), running_gateway(config(big, small)) as gw, \
            aiohttp.ClientSession() as session:
        yield gw, session


async def pin(session: aiohttp.ClientSession, gw: RunningGateway, level: int | None) -> dict[str, Any]:
    async with session.post(gw.base_url + "/admin/degradation", json={"level": level}, headers=ADMIN) as resp:
        assert resp.status == 200
        document: dict[str, Any] = await resp.json()
        return document


async def send(session: aiohttp.ClientSession, gw: RunningGateway, klass: str, body: dict[str, Any]
               ) -> tuple[int, dict[str, str]]:
    async with session.post(gw.base_url + "/v1/chat/completions", json=body,
                            headers={"x-tokenyard-class": klass}) as resp:
        await resp.read()
        return resp.status, dict(resp.headers)


def actions_total(gw: RunningGateway, action: str) -> float:
    value = gw.gateway.metrics.registry.get_sample_value("tokenyard_degradation_actions_total", {"action": action})
    return value or 0.0


async def test_each_degradation_action_reaches_the_upstream_request() -> None:
    big, small = Recorder("chat"), Recorder("tiny-1b")
    async with serving(big, small) as (gw, session):
        body = chat("chat", 1000, tools=TOOLS, tool_choice={"type": "function", "function": {"name": "mail"}},
                    parallel_tool_calls=True)
        # level 0: untouched
        status, headers = await send(session, gw, "standard", body)
        assert status == 200 and "x-tokenyard-degraded" not in headers
        sent_headers, sent = big.seen[-1]
        assert len(sent["tools"]) == 3 and sent["max_tokens"] == 1000
        assert "x-tokenyard-retrieval-top-k" not in {k.lower() for k in sent_headers}

        # level 1: compress_retrieval -> the top_k hint header goes upstream
        assert (await pin(session, gw, 1))["effective_level"] == 1
        status, headers = await send(session, gw, "standard", body)
        sent_headers, sent = big.seen[-1]
        assert {k.lower(): v for k, v in sent_headers.items()}["x-tokenyard-retrieval-top-k"] == "3"
        assert len(sent["tools"]) == 3

        # level 2: narrow_tools keeps the tool that tool_choice names, parallel calls off
        await pin(session, gw, 2)
        status, headers = await send(session, gw, "standard", body)
        assert headers["x-tokenyard-degraded"] == "narrow_tools"
        _, sent = big.seen[-1]
        assert [t["function"]["name"] for t in sent["tools"]] == ["mail"]
        assert sent["parallel_tool_calls"] is False

        # level 3: concise caps max_tokens and adds the brief-answer instruction
        await pin(session, gw, 3)
        status, headers = await send(session, gw, "standard", body)
        assert headers["x-tokenyard-degraded"] == "narrow_tools,concise"
        _, sent = big.seen[-1]
        assert sent["max_tokens"] == 256 and sent["messages"][0]["role"] == "system"
        assert sent["messages"][1] == {"role": "user", "content": "hello"}

        # level 4: fallback_model sends it to the smaller model's pool, under its upstream name
        await pin(session, gw, 4)
        before = len(big.seen)
        status, headers = await send(session, gw, "standard", body)
        assert status == 200
        assert headers["x-tokenyard-degraded"] == "narrow_tools,concise,fallback_model"
        assert len(big.seen) == before and small.seen[-1][1]["model"] == "tiny-1b"

        # premium lags one level behind: at 4 it sees level 3 (no fallback, its own 512 cap)
        status, headers = await send(session, gw, "premium", body)
        assert headers["x-tokenyard-degraded"] == "narrow_tools,concise"
        assert big.seen[-1][1]["max_tokens"] == 512

        assert actions_total(gw, "narrow_tools") == 4 and actions_total(gw, "concise") == 3
        assert actions_total(gw, "fallback_model") == 1
        assert gw.gateway.metrics.registry.get_sample_value("tokenyard_degradation_level") == 4
        async with session.get(gw.base_url + "/admin/classes", headers=ADMIN) as resp:
            classes = (await resp.json())["classes"]
            assert classes["standard"]["degradation_level"] == 4 and classes["premium"]["degradation_level"] == 3
            assert classes["batch"]["tier"] == "sheddable"

        # unpinned: the live signals (no pressure here) bring it back to 0
        assert (await pin(session, gw, None))["pinned"] is None
        status, headers = await send(session, gw, "standard", body)
        assert "x-tokenyard-degraded" not in headers and len(big.seen[-1][1]["tools"]) == 3


async def test_admin_degradation_requires_the_admin_key_and_a_valid_level() -> None:
    big, small = Recorder("chat"), Recorder("tiny-1b")
    async with serving(big, small) as (gw, session):
        url = gw.base_url + "/admin/degradation"
        async with session.post(url, json={"level": 2}) as resp:
            assert resp.status == 401
        for bad in ({"level": 9}, {"level": "high"}, {}, [1]):
            async with session.post(url, json=bad, headers=ADMIN) as resp:
                assert resp.status == 400
                assert (await resp.json())["error"]["code"] == "invalid_level"
        async with session.post(url, data=b"{not json", headers=ADMIN) as resp:
            assert resp.status == 400
        async with session.post(url, data=b"[" * 100_000 + b"]" * 100_000, headers=ADMIN) as resp:
            assert resp.status == 400  # nested past msgspec's depth limit: was a 500
        async with session.get(url, headers=ADMIN) as resp:
            state = await resp.json()
            assert state["level"] == 0 and state["pinned"] is None


async def test_requests_that_expire_in_the_queue_count_as_queue_wait_pressure() -> None:
    """The ladder's queue-wait signal includes requests whose queue TTL ran out while they waited: with one slot
    held and every queued request expiring, only the dispatched holder (0 s wait) was seen, so pressure stayed 0
    while the gateway answered 503 to all the others."""
    async with running_sim("fast", seed=0, itl_ms=20.0) as sim:
        config = traffic_config([sim_url(sim)], admission=fixed_limit(1),
                                classes={"standard": {"priority": 1, "ttft_slo_ms": 60_000, "queue_timeout_ms": 200}},
                                degradation={"queue_wait_target_ms": 100})
        async with running_gateway(config) as gw, aiohttp.ClientSession() as session:
            engine = gw.gateway.traffic.degrade
            assert engine is not None
            url = gw.base_url + "/v1/chat/completions"

            async def call(body: dict[str, Any]) -> int:
                async with session.post(url, json=body) as resp:
                    await resp.read()
                    return resp.status

            holder = asyncio.create_task(call(chat(sim.model, 150, stream=True)))  # ~3 s on the only slot
            await until(lambda: inflight(gw) == 1)
            statuses = await asyncio.gather(*(call(chat(sim.model, 4)) for _ in range(3)))
            assert statuses == [503, 503, 503]
            engine.evaluate()
            assert engine.last_pressure >= 1.5  # about 0.2 s waited / 0.1 s target
            assert await holder == 200
