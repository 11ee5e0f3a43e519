"""Error mapping for each CONTRACTS status, in OpenAI's format; auth, classes, deadlines, retries."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from tests.conftest import free_port
from tests.integration.gateway.helpers import chat_body, gateway_for, metric_value
from tokenyard.config import parse_config
from tokenyard.gateway.app import running_gateway
from tokenyard.sim.testing import running_sim

AUTH = {
    "keys": [{"key": "sk-acme", "tenant": "acme"}],
    "tenants": {"acme": {"class": "standard", "classes": ["standard", "batch"]}},
}


async def _post(session: aiohttp.ClientSession, url: str, body: Any, headers: dict[str, str] | None = None,
                path: str = "/v1/chat/completions") -> tuple[int, dict[str, Any], aiohttp.typedefs.LooseHeaders]:
    kwargs: dict[str, Any] = {"data": body} if isinstance(body, bytes) else {"json": body}
    async with session.post(url + path, headers=headers, **kwargs) as resp:
        return resp.status, await resp.json(), resp.headers


def _is_openai_error(payload: dict[str, Any]) -> bool:
    error = payload.get("error")
    return isinstance(error, dict) and {"message", "type", "code"} <= set(error)


async def test_client_errors_map_to_their_statuses() -> None:
    async with running_sim("fast") as sim, gateway_for([sim], limits={"max_body_bytes": 4096}, **AUTH) as gw, \
            aiohttp.ClientSession() as session:
        good = chat_body(sim.model, 3, stream=False)
        key = {"Authorization": "Bearer sk-acme"}
        cases: list[tuple[Any, dict[str, str] | None, int, str | None]] = [
            (good, None, 401, "missing_api_key"),
            (good, {"Authorization": "Bearer wrong"}, 401, "invalid_api_key"),
            ({**good, "temperature": 3}, key, 400, None),
            (b"{not json", key, 400, None),
            ({**good, "model": "no-such-model"}, key, 404, "model_not_found"),
            ({**good, "messages": [{"role": "user", "content": "x" * 10_000}]}, key, 413, "request_too_large"),
            (good, {**key, "x-tokenyard-class": "premium"}, 403, "class_not_allowed"),
            (good, {**key, "x-tokenyard-class": "nonexistent"}, 403, "class_not_allowed"),
            (good, {**key, "x-tokenyard-deadline-ms": "soon"}, 400, "invalid_deadline"),
            (good, {**key, "x-tokenyard-deadline-ms": "-5"}, 400, "invalid_deadline"),
        ]
        for body, headers, status, code in cases:
            got, payload, response_headers = await _post(session, gw.base_url, body, headers)
            assert got == status, (body if not isinstance(body, dict) else headers, payload)
            assert _is_openai_error(payload)
            assert response_headers["x-request-id"]
            if code is not None:
                assert payload["error"]["code"] == code
        ok, payload, headers = await _post(session, gw.base_url, good, {**key, "x-tokenyard-class": "batch"})
        assert ok == 200 and headers["x-tokenyard-class"] == "batch"
        assert metric_value(gw, "tokenyard_requests_total",
                            {"model": "", "class": "", "outcome": "rejected"}) >= 2


async def test_upstream_429_passes_through_and_no_upstream_is_503() -> None:
    async with running_sim("fast", faults={"error_rate": 1.0, "error_status": 429}) as sim, \
            gateway_for([sim]) as gw, aiohttp.ClientSession() as session:
        status, payload, _ = await _post(session, gw.base_url, chat_body(sim.model, 3, stream=False))
        assert status == 429 and _is_openai_error(payload)
    dead = f"http://127.0.0.1:{free_port()}/v1"
    config = parse_config({"listen": {"port": 0}, "models": {"*": {"endpoints": [{"url": dead}]}},
                           "access_log": {"enabled": False}}, env={})
    async with running_gateway(config) as gw, aiohttp.ClientSession() as session:
        status, payload, _ = await _post(session, gw.base_url, chat_body("any", 3, stream=False))
        assert status == 503 and payload["error"]["code"] == "no_healthy_upstream"
        async with session.get(gw.base_url + "/readyz") as resp:
            assert resp.status == 503
        async with session.get(gw.base_url + "/healthz") as resp:
            assert resp.status == 200


async def test_deadline_exceeded_is_504() -> None:
    async with running_sim("fast", ttft_ms=3000.0) as sim, gateway_for([sim]) as gw, \
            aiohttp.ClientSession() as session:
        headers = {"x-tokenyard-deadline-ms": "200"}
        status, payload, _ = await _post(session, gw.base_url, chat_body(sim.model, 3, stream=False), headers)
        assert status == 504 and payload["error"]["code"] == "deadline"
        # A stream whose head was already relayed ends with an SSE error event instead.
        async with session.post(gw.base_url + "/v1/chat/completions", json=chat_body(sim.model, 3, stream=True),
                                headers=headers) as resp:
            text = (await resp.read()).decode()
        assert "event: error" in text and "[DONE]" not in text and '"deadline"' in text
        assert metric_value(gw, "tokenyard_upstream_aborts_total", {"reason": "deadline"}) == 2
        assert metric_value(gw, "tokenyard_requests_total",
                            {"model": sim.model, "class": "standard", "outcome": "expired"}) == 2


@pytest.mark.parametrize("stream", [False, True])
async def test_failed_upstream_is_retried_on_another_endpoint(stream: bool) -> None:
    async with running_sim("fast") as sim, running_sim("fast", faults={"error_rate": 1.0, "error_status": 503}) \
            as broken:
        dead = f"http://127.0.0.1:{free_port()}/v1"
        endpoints = [{"url": dead}, {"url": broken.base_url + "/v1"}, {"url": sim.base_url + "/v1"}]
        config = parse_config({"listen": {"port": 0}, "access_log": {"enabled": False},
                               "retries": {"attempts": 3},
                               "models": {"chat": {"endpoints": endpoints, "upstream_model": sim.model}}}, env={})
        async with running_gateway(config) as gw, aiohttp.ClientSession() as session:
            gw.gateway.router.max_attempts = 3
            for _ in range(6):
                async with session.post(gw.base_url + "/v1/chat/completions",
                                        json=chat_body("chat", 3, stream=stream)) as resp:
                    assert resp.status == 200
                    body = await resp.read()
                    assert (b"[DONE]" in body) == stream

