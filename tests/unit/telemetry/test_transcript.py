"""Completion text for the opt-in transcript log: SSE chat and completion streams, whole JSON bodies, garbage."""

from __future__ import annotations

import pytest

from tokenyard.telemetry.transcript import clip, completion_text

CHAT_STREAM = (
    b'id: 1\ndata: {"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}\n\n'
    b'id: 2\ndata: {"choices":[{"index":0,"delta":{"content":"Hello"}}]}\n\n'
    b'id: 3\ndata: {"choices":[{"index":0,"delta":{"content":" world"},"finish_reason":"stop"}]}\n\n'
    b'id: 4\ndata: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}}\n\n'
    b"id: 5\ndata: [DONE]\n\n"
)


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        (CHAT_STREAM, "Hello world"),
        (b'data: {"choices":[{"text":"a"}]}\n\ndata: {"choices":[{"text":"b"}]}\n\ndata: [DONE]\n\n', "ab"),
        (b'{"choices":[{"message":{"role":"assistant","content":"whole answer"}}]}', "whole answer"),
        (b'{"choices":[{"text":"completion"}]}', "completion"),
        (b'{"error":{"message":"nope"}}', ""),
        (b'{"data":[{"embedding":[0.1]}]}', ""),
        (b"data: not json\n\ndata: {\"choices\": 3}\n\n", ""),
        (b"{broken", ""),
        (b"", ""),
    ],
)
def test_completion_text(raw: bytes, text: str) -> None:
    assert completion_text(bytearray(raw)) == text


def test_clip_marks_what_it_cuts() -> None:
    assert clip("short", 10) == "short"
    assert clip("x" * 15, 10) == "x" * 10 + "...[5 more characters]"
