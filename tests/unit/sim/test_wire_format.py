"""SSE chunk bytes and response bodies, checked field by field against vLLM's layout."""

from __future__ import annotations

import json

import pytest

from tokenyard.sim.engine import RequestHandle
from tokenyard.sim.openai_io import DONE, BadRequest, ChunkWriter, full_response, parse_request
from tokenyard.sim.scheduler import Sequence
from tokenyard.sim.text import VOCAB


def _events(data: bytes) -> list[dict[str, object]]:
    assert data.endswith(b"\n\n")
    out = []
    for block in data.split(b"\n\n")[:-1]:
        assert block.startswith(b"data: ")
        out.append(json.loads(block[6:]))
    return out


def _chat(stream: bool = True) -> bytes:
    return json.dumps({"model": "m\"odel", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3,
                       "stream": stream, "stream_options": {"include_usage": True}}).encode()


def test_chat_stream_chunks() -> None:
    req = parse_request(_chat(), chat=True, served='m"odel')
    assert req.include_usage and req.max_tokens == 3
    writer = ChunkWriter(req)
    handle = RequestHandle(Sequence(1, 5, 3), text_start=2, text_stride=3)
    events = _events(writer.render(handle, 0, 3, 3, "length"))
    assert len(events) == 4
    first = events[0]
    assert first["object"] == "chat.completion.chunk" and first["model"] == 'm"odel'
    assert first["choices"] == [{"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                                 "finish_reason": None}]
    words = [e["choices"][0]["delta"]["content"] for e in events[1:]]  # type: ignore[index]
    assert words == [VOCAB[(2 + 3 * k) % len(VOCAB)] for k in range(3)]
    assert [e["choices"][0]["finish_reason"] for e in events[1:]] == [None, None, "length"]  # type: ignore[index]
    assert len({e["id"] for e in events}) == 1
    usage = _events(writer.usage(5, 3))[0]
    assert usage["choices"] == [] and usage["usage"] == {"prompt_tokens": 5, "total_tokens": 8,
                                                         "completion_tokens": 3}
    assert DONE == b"data: [DONE]\n\n"


def test_completion_stream_and_whole_bodies() -> None:
    body = json.dumps({"model": "m", "prompt": "abc", "max_tokens": 2, "stream": True}).encode()
    req = parse_request(body, chat=False, served="m")
    writer = ChunkWriter(req)
    handle = RequestHandle(Sequence(1, 1, 2), text_start=0, text_stride=1)
    events = _events(writer.render(handle, 0, 2, 2, "stop"))
    assert [e["object"] for e in events] == ["text_completion"] * 2  # no role chunk for completions
    assert events[-1]["choices"][0]["finish_reason"] == "stop"  # type: ignore[index]
    whole = json.loads(full_response(req, " a b", "length", 1, 2))
    assert whole["object"] == "text_completion" and whole["choices"][0]["text"] == " a b"
    chat = json.loads(full_response(parse_request(_chat(False), True, 'm"odel'), " x", "stop", 4, 1))
    assert chat["choices"][0]["message"] == {"role": "assistant", "content": " x", "tool_calls": []}
    assert chat["usage"] == {"prompt_tokens": 4, "total_tokens": 5, "completion_tokens": 1}


def test_completions_default_max_tokens_and_token_id_prompts() -> None:
    req = parse_request(json.dumps({"model": "m", "prompt": [[1, 2, 3]]}).encode(), chat=False, served="m")
    assert req.max_tokens == 16 and req.prompt_text == "1 2 3"
    with pytest.raises(BadRequest):
        parse_request(json.dumps({"model": "m", "prompt": ["a", "b"]}).encode(), chat=False, served="m")
