"""Reading an OpenAI streaming response: server-sent events to typed events, and error-body classification."""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class StreamEvent:
    """One SSE event of a completion stream.

    kind: "chunk" (content may be ""), "done" (``data: [DONE]``) or "error" (an ``event: error`` or a JSON body
    with an ``error`` member: the server gave up mid-stream).
    """

    kind: str
    content: str = ""
    usage: dict[str, Any] | None = None


async def iter_events(lines: AsyncIterable[bytes]) -> AsyncIterator[StreamEvent]:
    """Parse SSE lines (``event:``/``data:``/``id:`` fields, blank line ends an event) into StreamEvents."""
    event_name = ""
    data_lines: list[str] = []
    async for raw in lines:
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        if line == "":
            if data_lines:
                yield parse_data(event_name, "\n".join(data_lines))
            event_name, data_lines = "", []
        elif line.startswith(":"):
            continue  # comment / keep-alive
        elif line.startswith("data:"):
            data_lines.append(line[5:].removeprefix(" "))
        elif line.startswith("event:"):
            event_name = line[6:].strip()
    if data_lines:
        yield parse_data(event_name, "\n".join(data_lines))


def parse_data(event_name: str, data: str) -> StreamEvent:
    if data.strip() == "[DONE]":
        return StreamEvent(kind="done")
    if event_name == "error":
        return StreamEvent(kind="error")
    try:
        payload = json.loads(data)
    except ValueError:
        return StreamEvent(kind="error")
    if not isinstance(payload, dict) or "error" in payload:
        return StreamEvent(kind="error")
    usage = payload.get("usage") if isinstance(payload.get("usage"), dict) else None
    return StreamEvent(kind="chunk", content=_content(payload), usage=usage)


def _content(payload: dict[str, Any]) -> str:
    choices = payload.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return ""
    choice = choices[0]
    delta = choice.get("delta")
    if isinstance(delta, dict):
        text = delta.get("content") or delta.get("reasoning_content") or ""
        return text if isinstance(text, str) else ""
    text = choice.get("text") or ""  # /v1/completions streams
    return text if isinstance(text, str) else ""


def classify_status(status: int, body: bytes, headers: Mapping[str, str] | None = None) -> str:
    """The outcome of a non-200 answer.

    A 429 is ``rate_limited`` when it says so (an error code, type or message about rate limits or quota, as
    OpenAI's ``rate_limit_exceeded``, or an ``x-ratelimit-remaining-*`` header at 0); any other 429 is ``shed``
    (tokenyard's overload answer, whatever the reason it gives). Every other status is ``error``.
    """
    if status != 429:
        return "error"
    try:
        error = json.loads(body).get("error", {})
        marker = f"{error.get('code', '')} {error.get('type', '')} {error.get('message', '')}".lower()
    except (ValueError, AttributeError):
        marker = ""
    if any(word in marker for word in ("rate_limit", "rate limit", "quota")):
        return "rate_limited"
    remaining = [v for k, v in (headers or {}).items() if k.lower().startswith("x-ratelimit-remaining")]
    return "rate_limited" if any(v.strip() == "0" for v in remaining) else "shed"


def message_text(payload: Any) -> str:
    """The assistant text of a non-streaming chat or completion answer."""
    if not isinstance(payload, dict):
        return ""
    choices = payload.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return ""
    message = choices[0].get("message")
    if isinstance(message, dict) and isinstance(message.get("content"), str):
        return str(message["content"])
    text = choices[0].get("text")
    return text if isinstance(text, str) else ""
