"""An upstream's error answer, turned into the gateway's: OpenAI's error body and the statuses of CONTRACTS.md.

Model servers answer errors in their own shapes (vLLM's top-level ``{"object": "error", ...}``, a proxy's
``text/plain`` ``404: Not Found``, an HTML page): a client of an OpenAI-compatible gateway must get
``{"error": {"message", "type", "param", "code"}}`` whatever the upstream sent. A body that already is an OpenAI
error keeps its message, type, param and code (missing fields filled in); anything else is wrapped, keeping the
upstream's text (bounded to ``MAX_MESSAGE_CHARS``) in the message.

Statuses (``error_status``): the client-error statuses of the contract (400, 404, 413, 429) pass unchanged; any
other 4xx is 400, except 401/403, which are about the gateway's own credential for the upstream, not the client's,
so they are 503; an upstream 504 stays 504 and every other 5xx is 503 (the upstream could not serve it).
"""

from __future__ import annotations

from typing import Any

import msgspec

from tokenyard.gateway.errors import GatewayError
from tokenyard.schema.errors import error_body

MAX_MESSAGE_CHARS = 1000
_KEPT_STATUSES = frozenset((400, 404, 413, 429))
_GATEWAY_SIDE_STATUSES = frozenset((401, 403))  # the gateway's upstream credential was refused
# Statuses whose answer tells the client to come back later; Retry-After is kept, or 1 s when the upstream gave none.
RETRY_LATER = frozenset((429, 503))


def error_status(upstream_status: int) -> int:
    """The status the client gets for an upstream's error status (see the module docstring)."""
    if upstream_status in _KEPT_STATUSES or upstream_status == 504:
        return upstream_status
    if upstream_status >= 500 or upstream_status in _GATEWAY_SIDE_STATUSES:
        return 503
    return 400


def _bounded(text: str) -> str:
    text = " ".join(text.split())  # one line: no newlines or runs of spaces from an HTML page or a traceback
    return text if len(text) <= MAX_MESSAGE_CHARS else text[: MAX_MESSAGE_CHARS - 3] + "..."


def _text_or_none(value: Any) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    return _bounded(str(value)) or None


def normalise_upstream_error(upstream_status: int, body: bytes) -> GatewayError:
    """The client's error for an upstream's non-200 answer with ``body`` (see the module docstring)."""
    status = error_status(upstream_status)
    try:
        document: Any = msgspec.json.decode(body)
    except msgspec.DecodeError:
        document = None
    error = document.get("error") if isinstance(document, dict) else None
    if isinstance(error, dict):  # OpenAI's shape: keep its fields
        fields: dict[str, Any] = error
    elif isinstance(document, dict) and isinstance(document.get("message"), str):
        fields = document  # vLLM's older top-level {"object": "error", "message", "type", "param", "code"}
    else:
        fields = {}
        text = _bounded(body.decode("utf-8", "replace")) if body else ""
        fields["message"] = f"the upstream answered {upstream_status}" + (f": {text}" if text else "")
    message = _text_or_none(fields.get("message")) or f"the upstream answered {upstream_status}"
    code = _text_or_none(fields.get("code")) or "upstream_error"
    return UpstreamError(status, message, code, param=_text_or_none(fields.get("param")),
                         error_type=_text_or_none(fields.get("type")) if status == upstream_status else None)


class UpstreamError(GatewayError):
    """A ``GatewayError`` that keeps the upstream's own error ``type`` when its status was kept."""

    def __init__(self, status: int, message: str, code: str, *, param: str | None,
                 error_type: str | None) -> None:
        super().__init__(status, message, code, param=param)
        self.error_type = error_type

    def body(self) -> bytes:
        if self.error_type is None:
            return super().body()
        return error_body(self.message, self.error_type, self.code, self.param)
