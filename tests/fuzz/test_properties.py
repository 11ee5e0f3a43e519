"""Property-based tests (hypothesis): arbitrary bytes and JSON never crash the validator, traversal tricks are
always caught, budgets never admit past their limit, and a live gateway answers random requests without 5xx."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz.background import background_gateway
from tokenyard.config import LimitsConfig
from tokenyard.schema import RequestInvalid, parse_chat, parse_completion, parse_embedding
from tokenyard.security.budgets import Budget, BudgetGuard
from tokenyard.security.http_guard import suspicious_path
from tokenyard.state import MemoryState

LIMITS = LimitsConfig(max_body_bytes=65_536, max_messages=16, max_message_chars=512)
PARSERS = (parse_chat, parse_completion, parse_embedding)

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=5)
                           | st.dictionaries(st.text(max_size=12), inner, max_size=5), max_leaves=30)
fields = st.sampled_from(["model", "messages", "prompt", "input", "role", "content", "max_tokens", "n",
                          "temperature", "top_p", "stop", "logprobs", "top_logprobs", "tools", "stream",
                          "stream_options", "logit_bias", "best_of", "dimensions", "encoding_format"])
openai_like = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(fields, inner, max_size=6), max_leaves=25)
quick = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))


def _parse_all(body: bytes) -> None:
    for parse in PARSERS:
        try:
            parse(body, LIMITS)
        except RequestInvalid as exc:
            assert 400 <= exc.status < 500 and exc.message


@quick
@given(st.binary(max_size=300))
def test_arbitrary_bytes_are_accepted_or_refused_with_4xx(body: bytes) -> None:
    _parse_all(body)


@quick
@given(openai_like)
def test_arbitrary_json_is_accepted_or_refused_with_4xx(document: Any) -> None:
    _parse_all(json.dumps(document).encode())


@quick
@given(st.lists(st.sampled_from(["dashboard", "assets", "..", ".", "%2e%2e", "%252e%252e", "a", "%2f", "\\"]),
                min_size=1, max_size=6))
def test_traversal_is_always_caught(segments: list[str]) -> None:
    path = "/" + "/".join(segments)
    decoded = path
    for _ in range(3):
        decoded = decoded.replace("%25", "%").replace("%2e", ".").replace("%2f", "/")
    dangerous = any(part in (".", "..") for part in decoded.split("/")) or "\\" in decoded
    if dangerous:
        assert suspicious_path(path)


@quick
@given(limit=st.integers(1, 500), costs=st.lists(st.integers(0, 200), max_size=30))
def test_a_budget_admits_only_while_tokens_remain(limit: int, costs: list[int]) -> None:
    async def run() -> None:
        guard = BudgetGuard(MemoryState())
        budget = [Budget("key", "k", "day", limit)]
        used = 0
        for cost in costs:
            refused = await guard.check(budget, now=1_000_000.0)
            assert (refused is not None) == (used >= limit)
            if refused is None:
                await guard.charge(budget, cost, now=1_000_000.0)
                used += cost
        # Charges of usage already spent are never refused, so overshoot is at most the last request.
        assert used < limit + (max(costs) if costs else 0) + 1

    asyncio.run(run())


@pytest.mark.timeout(120)
def test_a_live_gateway_answers_random_requests_without_5xx(tmp_path: Path) -> None:
    sections = {"tenants": {"acme": {"class": "standard"}}, "keys": [{"key": "sk-prop", "tenant": "acme"}],
                "limits": {"max_body_bytes": 65_536, "max_messages": 16, "max_message_chars": 512}}
    # Printable ASCII without leading/trailing blanks: what an HTTP client can send at all.
    header_values = st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=60)
    with background_gateway(tmp_path, **sections) as gw, requests.Session() as session:
        seen: list[int] = []

        @settings(max_examples=150, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        @given(path=st.sampled_from(["/v1/chat/completions", "/v1/completions", "/v1/embeddings"]),
               document=openai_like | st.fixed_dictionaries({"model": st.just("model-a"), "messages": json_values}),
               klass=header_values, deadline=header_values, token=st.sampled_from(["sk-prop", "sk-nope", ""]))
        def call(path: str, document: Any, klass: str, deadline: str, token: str) -> None:
            headers = {"Authorization": f"Bearer {token}", "x-tokenyard-class": klass,
                       "x-tokenyard-deadline-ms": deadline, "Content-Type": "application/json"}
            response = session.post(gw.base_url + path, data=json.dumps(document), headers=headers, timeout=15)
            seen.append(response.status_code)
            assert response.status_code < 500, (path, document, response.text[:300])
            if response.status_code >= 400:
                assert "error" in response.json()

        call()
        assert len(seen) >= 100
        final = session.post(gw.base_url + "/v1/chat/completions", timeout=15,
                             headers={"Authorization": "Bearer sk-prop"},
                             json={"model": "model-a", "messages": [{"role": "user", "content": "hi"}],
                                   "max_tokens": 2})
        assert final.status_code == 200
