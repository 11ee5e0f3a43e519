"""Schemathesis against the gateway's own ``/openapi.json``: positive and negative cases for every operation
find no 5xx, no hang (each call has a timeout) and no crash (the gateway answers a normal request afterwards)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from tests.fuzz.background import background_gateway

KEY = "sk-fuzz"
SECTIONS = {
    "tenants": {"acme": {"class": "standard"}},
    "keys": [{"key": KEY, "tenant": "acme"}],
    "admin": {"key": "admin-fuzz"},
    "limits": {"max_body_bytes": 65_536, "max_messages": 16, "max_message_chars": 256},
}
EXAMPLES = 15  # per operation and mode: the whole run stays well under a minute


def fuzz(operation: schemathesis.APIOperation[Any, Any, Any, Any], mode: GenerationMode, base: str,
         session: requests.Session, headers: dict[str, str], failures: list[str]) -> None:
    """``EXAMPLES`` generated cases of one operation; a 5xx is recorded, a hang fails the call's timeout."""

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def call(case: Any) -> None:
        response = case.call(base_url=base, session=session, headers=headers, timeout=15)
        if response.status_code >= 500:
            failures.append(f"{case.method} {case.formatted_path} -> {response.status_code}: {case.body!r:.300}")

    call()


@pytest.mark.timeout(120)
def test_no_operation_answers_5xx(tmp_path: Path) -> None:
    with background_gateway(tmp_path, **SECTIONS) as gw:
        base = gw.base_url
        schema = schemathesis.openapi.from_url(base + "/openapi.json")
        document = requests.get(base + "/openapi.json", timeout=10).json()
        assert document["openapi"].startswith("3.1")
        operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
        assert {op.path for op in operations} >= {"/v1/chat/completions", "/v1/completions", "/v1/embeddings",
                                                   "/v1/models", "/admin/requests"}
        failures: list[str] = []
        with requests.Session() as session:
            for operation in operations:
                # Negative cases need something to break: a body or parameters.
                breakable = operation.body or operation.path_parameters or operation.query or operation.headers
                modes = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE) if breakable else (GenerationMode.POSITIVE,)
                for mode in modes:
                    token = "admin-fuzz" if operation.path.startswith("/admin/") else KEY
                    fuzz(operation, mode, base, session, {"Authorization": f"Bearer {token}"}, failures)
        assert not failures, failures[:5]
        ok = session.post(base + "/v1/chat/completions", timeout=15, headers={"Authorization": f"Bearer {KEY}"},
                          json={"model": "model-a", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2})
        assert ok.status_code == 200
