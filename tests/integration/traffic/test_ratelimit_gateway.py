"""Rate limits through the real gateway: requests per minute, tokens per minute reconciled with real usage,
concurrency; OpenAI's x-ratelimit-* headers on answers and refusals, 429 with Retry-After."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from tests.integration.traffic.admission_helpers import Recorder, chat
from tokenyard.config import parse_config
from tokenyard.gateway.app import RunningGateway, running_gateway

pytestmark = pytest.mark.timeout(60)


def config(rec: Recorder, tenant: dict[str, Any], key: dict[str, Any] | None = None) -> Any:
    return parse_config({
        "listen": {"host": "127.0.0.1", "port": 0},
        "models": {"chat": {"endpoints": [{"url": rec.base_url + "/v1"}]}},
        "tenants": {"acme": tenant},
        "keys": [{"key": "sk-acme", "tenant": "acme", **(key or {})}],
        "admission": {"scrape": False},
        "access_log": {"enabled": False},
    }, env={})


async def send(session: aiohttp.ClientSession, gw: RunningGateway, max_tokens: int = 8
               ) -> tuple[int, dict[str, str], Any]:
    async with session.post(gw.base_url + "/v1/chat/completions", json=chat("chat", max_tokens),
                            headers={"Authorization": "Bearer sk-acme"}) as resp:
        return resp.status, dict(resp.headers), await resp.json(content_type=None)


async def test_requests_per_minute_with_headers_and_retry_after() -> None:
    async with Recorder("chat").running() as rec, running_gateway(config(rec, {"rpm": 2})) as gw, \
            aiohttp.ClientSession() as session:
        remaining = []
        for _ in range(2):
            status, headers, _ = await send(session, gw)
            assert status == 200 and headers["x-ratelimit-limit-requests"] == "2"
            remaining.append(headers["x-ratelimit-remaining-requests"])
            assert "x-ratelimit-reset-requests" in headers
        assert remaining == ["1", "0"]
        status, headers, body = await send(session, gw)
        assert status == 429 and body["error"]["type"] == "rate_limit_error"
        assert body["error"]["code"] == "requests_per_minute"
        assert int(headers["Retry-After"]) >= 1 and headers["x-ratelimit-remaining-requests"] == "0"
        assert len(rec.seen) == 2
        value = gw.gateway.metrics.registry.get_sample_value(
            "tokenyard_requests_total", {"model": "chat", "class": "standard", "outcome": "rate_limited"})
        assert value == 1


async def test_tokens_per_minute_charged_by_estimate_then_reconciled() -> None:
    async with Recorder("chat", delay_s=0.3).running() as rec, running_gateway(config(rec, {"tpm": 1000})) as gw, \
            aiohttp.ClientSession() as session:
        # the estimate (prompt + 700) is charged up front: a second such request does not fit meanwhile
        first = asyncio.create_task(send(session, gw, 700))
        while not rec.seen:
            await asyncio.sleep(0.01)
        status, headers, body = await send(session, gw, 700)
        assert status == 429 and body["error"]["code"] == "tokens_per_minute"
        assert int(headers["Retry-After"]) >= 1 and headers["x-ratelimit-limit-tokens"] == "1000"
        assert int(headers["x-ratelimit-remaining-tokens"]) < 300
        status, headers, _ = await first
        assert status == 200 and int(headers["x-ratelimit-remaining-tokens"]) < 300
        # the upstream reported 15 tokens: the over-estimate was refunded, so the same request fits again
        status, _, _ = await send(session, gw, 700)
        assert status == 200, "the refund of the over-estimate should have made room"
        assert len(rec.seen) == 2


async def test_concurrency_limit_per_key() -> None:
    async with Recorder("chat", delay_s=0.5).running() as rec, \
            running_gateway(config(rec, {}, {"max_concurrency": 1})) as gw, aiohttp.ClientSession() as session:
        first = asyncio.create_task(send(session, gw))
        while not rec.seen:
            await asyncio.sleep(0.01)
        status, headers, body = await send(session, gw)
        assert status == 429 and body["error"]["code"] == "concurrency" and "Retry-After" in headers
        assert (await first)[0] == 200
        assert (await send(session, gw))[0] == 200  # the slot was given back
