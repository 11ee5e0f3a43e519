"""The inference step counts a whole read of SSE lines with one scan and one decode; the result is what decoding
line by line gives, and a broken line still raises after the lines before it were counted."""

from __future__ import annotations

import msgspec
import pytest

from tokenyard.pipeline.inference import InferenceStep, Progress


def _line(obj: object) -> bytes:
    return b"data: " + msgspec.json.encode(obj)


def _read(lines: list[bytes]) -> bytes:
    return b"\n".join(lines) + b"\n"


CHAT = [_line({"choices": [{"delta": {"role": "assistant"}}]}),
        _line({"choices": [{"delta": {"content": "Hel"}}]}), b"",
        _line({"choices": [{"delta": {"content": "lo"}, "finish_reason": None}]}), b": comment",
        _line({"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 2}}), b"data: [DONE]"]


def test_a_read_of_chat_chunks_is_counted_at_once() -> None:
    progress = Progress(request_id="r")
    assert InferenceStep._consume(_read(CHAT), progress)
    assert (progress.parts, progress.tokens, progress.prompt_tokens, progress.completion_tokens) == (
        ["Hel", "lo"], 2, 7, 2)


def test_completions_chunks_and_crlf_lines() -> None:
    progress = Progress(request_id="r")
    lines = [_line({"choices": [{"text": "a"}]}) + b"\r", _line({"choices": [{"text": ""}]}) + b"\r"]
    assert InferenceStep._consume(_read(lines), progress)
    assert (progress.parts, progress.tokens) == (["a"], 1)


def test_reads_without_text_say_so() -> None:
    progress = Progress(request_id="r")
    assert not InferenceStep._consume(_read([b"", b"data: [DONE]", b": ping"]), progress)
    assert not InferenceStep._consume(_line({"choices": [{"delta": {"role": "assistant"}}]}), progress)
    assert progress.tokens == 0


def test_a_broken_line_raises_after_the_lines_before_it_count() -> None:
    progress = Progress(request_id="r")
    lines = [_line({"choices": [{"delta": {"content": "x"}}]}), b'data: {"choices": [',
             _line({"choices": [{"delta": {"content": "never"}}]})]
    with pytest.raises(msgspec.DecodeError):
        InferenceStep._consume(_read(lines), progress)
    assert (progress.parts, progress.tokens) == (["x"], 1)


def test_a_last_line_without_newline_and_lines_that_only_look_alike() -> None:
    progress = Progress(request_id="r")
    read = b'event: x\n  data: {"choices": [{"text": "no"}]}\nxdata: {}\n' + _line({"choices": [{"text": "yes"}]})
    assert InferenceStep._consume(read, progress)
    assert progress.parts == ["yes"]
