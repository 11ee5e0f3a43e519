"""Early context-window rejection: only what certainly cannot fit."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tokenyard.schema import RequestInvalid, check_context_window, parse_chat, parse_completion, parse_embedding


def chat(content: str, **fields: Any) -> bytes:
    return json.dumps({"model": "m", "messages": [{"role": "user", "content": content}], **fields}).encode()


def test_no_window_configured() -> None:
    check_context_window(parse_chat(chat("x" * 100_000, max_tokens=10**6)), None)


def test_max_tokens_above_window() -> None:
    with pytest.raises(RequestInvalid) as caught:
        check_context_window(parse_chat(chat("hi", max_completion_tokens=5000)), 4096)
    # The error names the field the client sent.
    assert (caught.value.param, caught.value.code) == ("max_completion_tokens", "context_length_exceeded")
    assert caught.value.message.startswith("max_completion_tokens: 5000 is more than the model's context window")
    with pytest.raises(RequestInvalid) as caught:
        check_context_window(parse_chat(chat("hi", max_tokens=5000)), 4096)
    assert caught.value.param == "max_tokens" and caught.value.message.startswith("max_tokens: 5000 is more")
    check_context_window(parse_chat(chat("hi", max_tokens=4096)), 4096)


def test_exact_token_prompts() -> None:
    request = parse_completion(json.dumps({"model": "m", "prompt": list(range(4000)), "max_tokens": 97}).encode())
    assert request.prompt_tokens_exact
    with pytest.raises(RequestInvalid) as caught:
        check_context_window(request, 4096)
    assert caught.value.param == "prompt"
    check_context_window(request, 4097)


def test_estimated_text_prompts_need_a_wide_margin() -> None:
    near = parse_chat(chat("word " * 4000))  # ~5000 estimated tokens against a 4096 window: let upstream decide
    assert not near.prompt_tokens_exact
    check_context_window(near, 4096)
    far = parse_chat(chat("word " * 8000))
    with pytest.raises(RequestInvalid) as caught:
        check_context_window(far, 4096)
    assert caught.value.param == "messages" and "estimated" in caught.value.message
    embedding = parse_embedding(json.dumps({"model": "e", "input": "x" * 40_000}).encode())
    with pytest.raises(RequestInvalid) as caught:
        check_context_window(embedding, 512)
    assert caught.value.param == "input"
