"""OpenAI's error body."""

from __future__ import annotations

import json

from tokenyard.schema import RequestInvalid, error_body


def test_error_body_shape() -> None:
    parsed = json.loads(
        error_body("temperature: must be <= 2, got 3", "invalid_request_error", "invalid_value", "temperature")
    )
    assert parsed == {
        "error": {
            "message": "temperature: must be <= 2, got 3",
            "type": "invalid_request_error",
            "param": "temperature",
            "code": "invalid_value",
        }
    }
    assert json.loads(error_body("no", "server_error", None))["error"]["param"] is None


def test_request_invalid_carries_its_body() -> None:
    error = RequestInvalid(413, "too big", None, "request_too_large")
    assert str(error) == "too big" and error.status == 413
    assert json.loads(error.body())["error"]["code"] == "request_too_large"
    assert "413" in repr(error)
