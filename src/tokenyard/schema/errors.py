"""Rejections of client requests, and OpenAI's error body."""

from __future__ import annotations

import msgspec

INVALID_REQUEST = "invalid_request_error"


class RequestInvalid(Exception):
    """A request that must be refused before any upstream work: ``status`` is 400 or 413.

    ``message`` names the parameter (``"temperature: must be <= 2, got 3"``); ``param`` is its path
    (``"messages[2].tool_call_id"``) or None for the body as a whole; ``code`` is a short machine-readable reason
    (``invalid_json``, ``invalid_type``, ``invalid_value``, ``missing_required_parameter``,
    ``request_too_large``, ``array_above_max_length``, ``string_above_max_length``).
    """

    def __init__(self, status: int, message: str, param: str | None = None, code: str = "invalid_value") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code

    def body(self) -> bytes:
        """The OpenAI error body for this rejection."""
        return error_body(self.message, INVALID_REQUEST, self.code, self.param)

    def __repr__(self) -> str:
        return f"RequestInvalid({self.status}, {self.message!r}, param={self.param!r}, code={self.code!r})"


class _ErrorDetail(msgspec.Struct):
    message: str
    type: str
    param: str | None
    code: str | None


class _ErrorEnvelope(msgspec.Struct):
    error: _ErrorDetail


def error_body(message: str, type: str, code: str | None, param: str | None = None) -> bytes:
    """``{"error": {"message", "type", "param", "code"}}`` as JSON bytes, the shape OpenAI's clients parse."""
    return msgspec.json.encode(_ErrorEnvelope(_ErrorDetail(message=message, type=type, param=param, code=code)))
