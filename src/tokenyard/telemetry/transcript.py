"""The completion text of a response, for the access log of tenants that opted in to prompt logging.

Runs once per logged request, off the relay's hot path (the relay only appends the bytes it already has). It reads
OpenAI-shaped answers: an SSE stream of chat or completion chunks, or a whole JSON body. Anything else (an error
body, embeddings) yields no text rather than a guess.
"""

from __future__ import annotations

from typing import Any

import msgspec

MAX_LOGGED_CHARS = 32_768


def clip(text: str, limit: int = MAX_LOGGED_CHARS) -> str:
    """At most ``limit`` characters, marked when cut so a reader knows the log line is not the whole text."""
    return text if len(text) <= limit else text[:limit] + f"...[{len(text) - limit} more characters]"


def _choice_text(choice: Any) -> str:
    if not isinstance(choice, dict):
        return ""
    for holder in (choice.get("delta"), choice.get("message")):
        if isinstance(holder, dict) and isinstance(holder.get("content"), str):
            return str(holder["content"])
    text = choice.get("text")
    return text if isinstance(text, str) else ""


def _first_choice_text(payload: Any) -> str:
    if not isinstance(payload, dict):
        return ""
    choices = payload.get("choices")
    if not isinstance(choices, list) or not choices:
        return ""
    return _choice_text(choices[0])


def completion_text(raw: bytes | bytearray) -> str:
    """The first choice's text, from an SSE stream or a JSON body."""
    data = bytes(raw)
    if data.lstrip().startswith(b"{"):
        try:
            return _first_choice_text(msgspec.json.decode(data))
        except msgspec.DecodeError:
            return ""
    parts: list[str] = []
    for line in data.split(b"\n"):
        if not line.startswith(b"data:"):
            continue
        payload = line[5:].strip()
        if not payload or payload == b"[DONE]":
            continue
        try:
            parts.append(_first_choice_text(msgspec.json.decode(payload)))
        except msgspec.DecodeError:
            continue
    return "".join(parts)
