"""Completions and embeddings: prompt/input shapes, ranges and summaries."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tokenyard.config import LimitsConfig
from tokenyard.schema import RequestInvalid, parse_completion, parse_embedding


def completion(**fields: Any) -> bytes:
    doc: dict[str, Any] = {"model": "base", "prompt": "Once upon a time"}
    doc.update(fields)
    return json.dumps(doc).encode()


def embedding(**fields: Any) -> bytes:
    doc: dict[str, Any] = {"model": "embed", "input": "hello"}
    doc.update(fields)
    return json.dumps(doc).encode()


@pytest.mark.parametrize(
    ("prompt", "text", "tokens", "count"),
    [
        ("abcdefgh", "abcdefgh", 2, 1),
        ("", "", 0, 1),
        (["ab", "abcde"], "ab\nabcde", 1 + 2, 2),
        ([1, 2, 3], "1 2 3", 3, 1),
        ([[1, 2], [3]], "1 2\n3", 3, 2),
    ],
)
def test_prompt_shapes(prompt: Any, text: str, tokens: int, count: int) -> None:
    request = parse_completion(completion(prompt=prompt, n=2))
    assert (request.prompt_text, request.prompt_tokens_estimate, request.n) == (text, tokens, 2 * count)


COMPLETION_INVALID: list[tuple[str, bytes, str | None, str]] = [
    ("prompt missing", json.dumps({"model": "m"}).encode(), "prompt", "required parameter missing"),
    ("prompt object", completion(prompt={}), "prompt", "expected a string or an array, got an object"),
    ("prompt empty list", completion(prompt=[]), "prompt", "must not be an empty list"),
    ("mixed strings", completion(prompt=["a", 1]), "prompt[1]", "all items must be strings"),
    ("mixed ids", completion(prompt=[1, "a"]), "prompt[1]", "all items must be token ids"),
    ("mixed lists", completion(prompt=[[1], 2]), "prompt[1]", "all items must be token-id lists"),
    ("empty id list", completion(prompt=[[1], []]), "prompt[1]", "must not be an empty list"),
    ("negative id", completion(prompt=[-1]), "prompt[0]", "token ids must be in 0..4294967295, got -1"),
    ("huge id", completion(prompt=[[2**40]]), "prompt[0][0]", "token ids must be in"),
    ("nested too far", completion(prompt=[[[1]]]), "prompt[0][0]", "expected an integer"),
    ("logprobs high", completion(logprobs=6), "logprobs", "logprobs: must be <= 5, got 6"),
    ("logprobs bool", completion(logprobs=True), "logprobs", "expected an integer or null, got a boolean"),
    ("best_of below n", completion(n=3, best_of=2), "best_of", "must be >= n (3)"),
    ("best_of high", completion(best_of=21), "best_of", "<= 20"),
    ("temperature", completion(temperature=2.1), "temperature", "<= 2"),
    ("max_tokens", completion(max_tokens=0), "max_tokens", ">= 1"),
    ("stop", completion(stop=["a"] * 5), "stop", "at most 4"),
    ("stream_options", completion(stream_options={"include_usage": True}), "stream_options", "only allowed"),
    ("echo type", completion(echo="yes"), "echo", "expected a boolean"),
    ("model empty", completion(model=""), "model", "non-empty"),
]


@pytest.mark.parametrize(
    ("raw", "param", "fragment"), [c[1:] for c in COMPLETION_INVALID], ids=[c[0] for c in COMPLETION_INVALID]
)
def test_completion_invalid(raw: bytes, param: str | None, fragment: str) -> None:
    with pytest.raises(RequestInvalid) as caught:
        parse_completion(raw)
    assert (caught.value.status, caught.value.param) == (400, param)
    assert fragment in caught.value.message


def test_completion_summary_and_limits() -> None:
    request = parse_completion(
        completion(stream=True, stream_options={"include_usage": True}, max_tokens=9, temperature=0, user="u")
    )
    assert request.stream and request.include_usage and request.deterministic
    assert (request.max_tokens, request.user, request.body.prompt) == (9, "u", "Once upon a time")
    limits = LimitsConfig(max_messages=2, max_message_chars=5, max_body_bytes=100)
    with pytest.raises(RequestInvalid, match="at most 2 prompts"):
        parse_completion(completion(prompt=["a", "b", "c"]), limits)
    with pytest.raises(RequestInvalid) as caught:
        parse_completion(completion(prompt="abcdef"), limits)
    assert caught.value.code == "string_above_max_length"
    with pytest.raises(RequestInvalid) as caught:
        parse_completion(completion(prompt="x" * 200), limits)
    assert caught.value.status == 413


@pytest.mark.parametrize(
    ("value", "text", "tokens", "count"),
    [("abcd", "abcd", 1, 1), (["a", "bb"], "a\nbb", 2, 2), ([5, 6], "5 6", 2, 1), ([[5], [6, 7]], "5\n6 7", 3, 2)],
)
def test_embedding_inputs(value: Any, text: str, tokens: int, count: int) -> None:
    request = parse_embedding(embedding(input=value, encoding_format="base64", dimensions=256))
    assert (request.prompt_text, request.prompt_tokens_estimate, request.n) == (text, tokens, count)
    assert request.deterministic and not request.stream and request.max_tokens is None


EMBEDDING_INVALID: list[tuple[str, bytes, str | None, str]] = [
    ("input missing", json.dumps({"model": "e"}).encode(), "input", "required parameter missing"),
    ("input empty string", embedding(input=""), "input", "must not be an empty string"),
    ("input empty item", embedding(input=["a", ""]), "input[1]", "must not be an empty string"),
    ("input empty list", embedding(input=[]), "input", "must not be an empty list"),
    ("input number", embedding(input=5), "input", "expected a string or an array"),
    ("too many inputs", embedding(input=["a"] * 2049), "input", "at most 2048 inputs"),
    ("encoding", embedding(encoding_format="hex"), "encoding_format", "invalid enum value 'hex'"),
    ("dimensions", embedding(dimensions=0), "dimensions", ">= 1"),
    ("model missing", json.dumps({"input": "x"}).encode(), "model", "required"),
]


@pytest.mark.parametrize(
    ("raw", "param", "fragment"), [c[1:] for c in EMBEDDING_INVALID], ids=[c[0] for c in EMBEDDING_INVALID]
)
def test_embedding_invalid(raw: bytes, param: str | None, fragment: str) -> None:
    with pytest.raises(RequestInvalid) as caught:
        parse_embedding(raw)
    assert (caught.value.status, caught.value.param) == (400, param)
    assert fragment in caught.value.message
