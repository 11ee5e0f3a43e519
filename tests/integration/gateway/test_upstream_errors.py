"""Upstream error answers reach the client in OpenAI's error format with the statuses of CONTRACTS.md."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest

from tests.integration.gateway.helpers import chat_body
from tests.integration.gateway.upstream_double import FixedUpstream
from tokenyard.config import parse_config
from tokenyard.gateway.app import running_gateway
from tokenyard.gateway.upstream_errors import MAX_MESSAGE_CHARS
from tokenyard.sim.testing import running_sim

OPENAI_ERROR = {"error": {"message": "bad thing", "type": "invalid_request_error", "param": "messages",
                          "code": "x_code"}}
VLLM_ERROR = {"object": "error", "message": "This model's maximum context length is 10 tokens",
              "type": "BadRequestError", "param": None, "code": 400}
# (upstream status, content type, body) -> (client status, fragment of the message, code, type)
CASES: list[tuple[int, str, bytes, int, str, str, str]] = [
    (404, "text/plain", b"404: Not Found", 404, "the upstream answered 404: 404: Not Found", "upstream_error",
     "not_found_error"),
    (400, "application/json", json.dumps(OPENAI_ERROR).encode(), 400, "bad thing", "x_code",
     "invalid_request_error"),
    (400, "application/json", json.dumps(VLLM_ERROR).encode(), 400, "maximum context length", "400",
     "BadRequestError"),
    (422, "application/json", b'{"detail": [{"msg": "field required"}]}', 400, "field required", "upstream_error",
     "invalid_request_error"),
    (500, "application/json", b'{"detail": "engine crashed"}', 503, "engine crashed", "upstream_error",
     "service_unavailable"),
    (500, "text/html", b"<html>" + b"x" * 5000 + b"</html>", 503, "the upstream answered 500: <html>xxx",
     "upstream_error", "service_unavailable"),
    (401, "application/json", b'{"error": {"message": "invalid upstream key"}}', 503, "invalid upstream key",
     "upstream_error", "service_unavailable"),
    (504, "text/plain", b"", 504, "the upstream answered 504", "upstream_error", "timeout_error"),
]


def _config(url: str, upstream_model: str = "m") -> Any:
    return parse_config({"listen": {"port": 0}, "access_log": {"enabled": False}, "retries": {"attempts": 1},
                         "models": {"m": {"endpoints": [{"url": url}], "upstream_model": upstream_model}}}, env={})


@pytest.mark.parametrize("stream", [False, True])
async def test_upstream_errors_are_openai_errors(stream: bool) -> None:
    async with FixedUpstream().running() as upstream, running_gateway(_config(upstream.base_url + "/v1")) as gw, \
            aiohttp.ClientSession() as session:
        for upstream_status, content_type, body, status, fragment, code, error_type in CASES:
            upstream.status, upstream.content_type, upstream.body = upstream_status, content_type, body
            async with session.post(gw.base_url + "/v1/chat/completions", json=chat_body("m", 3, stream)) as resp:
                case = (upstream_status, body[:40])
                assert resp.status == status, case
                assert resp.content_type == "application/json", case
                assert resp.headers["x-request-id"], case
                assert ("Retry-After" in resp.headers) == (status == 503), case
                payload = await resp.json()
            error = payload["error"]
            assert set(error) == {"message", "type", "param", "code"}, case
            assert fragment in error["message"] and len(error["message"]) <= MAX_MESSAGE_CHARS + 40, case
            assert (error["code"], error["type"]) == (code, error_type), case
        upstream.status, upstream.body = 429, json.dumps(OPENAI_ERROR).encode()
        upstream.headers = {"Retry-After": "7"}
        async with session.post(gw.base_url + "/v1/completions", json={"model": "m", "prompt": "x"}) as resp:
            assert resp.status == 429 and resp.headers["Retry-After"] == "7"
            assert (await resp.json()) == OPENAI_ERROR
        async with session.post(gw.base_url + "/v1/chat/completions", json=chat_body("m", 3, stream)) as resp:
            assert (await resp.json())["error"]["param"] == "messages"


@pytest.mark.parametrize("stream", [False, True])
async def test_simulator_faults_become_contract_errors(stream: bool) -> None:
    async with running_sim("fast", faults={"error_rate": 1.0, "error_status": 500}) as sim, \
            running_gateway(_config(sim.base_url + "/v1", sim.model)) as gw, aiohttp.ClientSession() as session:
        async with session.post(gw.base_url + "/v1/chat/completions", json=chat_body("m", 3, stream)) as resp:
            assert resp.status == 503
            error = (await resp.json())["error"]
        assert set(error) == {"message", "type", "param", "code"} and error["type"] == "service_unavailable"
