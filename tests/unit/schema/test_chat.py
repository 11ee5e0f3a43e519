"""Chat completion validation: every rule, table-driven, and the request summary."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tokenyard.config import LimitsConfig
from tokenyard.schema import RequestInvalid, parse_chat
from tokenyard.schema.estimate import TOKENS_PER_IMAGE, TOKENS_PER_MESSAGE, TOKENS_REPLY_PRIMING

USER = {"role": "user", "content": "Hello there"}


def body(**fields: Any) -> bytes:
    doc: dict[str, Any] = {"model": "chat", "messages": [USER]}
    doc.update(fields)
    return json.dumps(doc).encode()


def tool(name: str = "get_weather", **function: Any) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name, **function}}


VALID: list[tuple[str, dict[str, Any]]] = [
    ("minimal", {}),
    (
        "sampling at the edges",
        {"temperature": 2, "top_p": 0, "n": 128, "presence_penalty": -2, "frequency_penalty": 2, "seed": -(2**63)},
    ),
    ("nulls", {"temperature": None, "max_tokens": None, "stop": None, "n": None, "tools": None}),
    ("stop string", {"stop": "\n"}),
    ("four stops", {"stop": ["a", "b", "c", "d"]}),
    ("logprobs", {"logprobs": True, "top_logprobs": 20}),
    ("stream with usage", {"stream": True, "stream_options": {"include_usage": True}}),
    ("max_completion_tokens", {"max_completion_tokens": 1}),
    (
        "tools",
        {
            "tools": [tool(description="d", parameters={"type": "object", "properties": {}}, strict=True)],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        },
    ),
    ("tool choice strings", {"tools": [tool()], "tool_choice": "required"}),
    (
        "response formats",
        {"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}},
    ),
    ("json object", {"response_format": {"type": "json_object"}}),
    ("logit bias", {"logit_bias": {"50256": -100, "1": 100}}),
    ("unknown fields pass", {"guided_json": {"a": 1}, "metadata": {"k": "v"}, "extra_body": [1, 2]}),
    (
        "all roles",
        {
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "developer", "content": [{"type": "text", "text": "really"}]},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "hi"},
                        {"type": "image_url", "image_url": {"url": "data:x", "detail": "low"}},
                        {"type": "input_audio", "input_audio": {"data": "AAA", "format": "wav"}},
                        {"type": "file", "file": {"file_id": "f1"}},
                    ],
                },
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
                },
                {"role": "tool", "tool_call_id": "c1", "content": "42"},
                {"role": "assistant", "content": [{"type": "refusal", "refusal": "no"}]},
                {"role": "function", "name": "f", "content": "old style"},
            ]
        },
    ),
]


@pytest.mark.parametrize("fields", [v[1] for v in VALID], ids=[v[0] for v in VALID])
def test_valid(fields: dict[str, Any]) -> None:
    parse_chat(body(**fields))


INVALID: list[tuple[str, bytes, int, str | None, str]] = [
    # (id, body, status, param, message fragment)
    ("temperature high", body(temperature=3), 400, "temperature", "temperature: must be <= 2, got 3"),
    ("temperature low", body(temperature=-0.5), 400, "temperature", "must be >= 0, got -0.5"),
    ("temperature type", body(temperature="hot"), 400, "temperature", "expected a number or null, got a string"),
    ("top_p", body(top_p=1.5), 400, "top_p", "top_p: must be <= 1, got 1.5"),
    ("n zero", body(n=0), 400, "n", "n: must be >= 1, got 0"),
    ("n high", body(n=129), 400, "n", "n: must be <= 128"),
    ("n float", body(n=1.5), 400, "n", "expected an integer or null, got a number"),
    ("five stops", body(stop=list("abcde")), 400, "stop", "at most 4"),
    ("stop type", body(stop=[1]), 400, "stop[0]", "expected a string"),
    ("top_logprobs high", body(logprobs=True, top_logprobs=21), 400, "top_logprobs", "<= 20"),
    ("top_logprobs alone", body(top_logprobs=2), 400, "top_logprobs", "requires logprobs"),
    ("max_tokens zero", body(max_tokens=0), 400, "max_tokens", "max_tokens: must be >= 1, got 0"),
    ("max_tokens negative", body(max_tokens=-5), 400, "max_tokens", "must be >= 1"),
    ("max_tokens string", body(max_tokens="10"), 400, "max_tokens", "expected an integer or null"),
    ("max_completion_tokens", body(max_completion_tokens=0), 400, "max_completion_tokens", ">= 1"),
    ("presence", body(presence_penalty=2.5), 400, "presence_penalty", "<= 2"),
    ("frequency", body(frequency_penalty=-3), 400, "frequency_penalty", ">= -2"),
    ("stream type", body(stream="yes"), 400, "stream", "expected a boolean or null"),
    (
        "stream_options alone",
        body(stream_options={"include_usage": True}),
        400,
        "stream_options",
        "only allowed when stream is true",
    ),
    ("stream_options with false", body(stream=False, stream_options={}), 400, "stream_options", "only allowed"),
    ("seed huge", body(seed=2**63), 400, "seed", "seed: must be <="),
    ("seed float", body(seed=1.5), 400, "seed", "expected an integer"),
    ("logit bias range", body(logit_bias={"1": 101}), 400, "logit_bias.1", "<= 100"),
    ("logit bias key", body(logit_bias={"abc": 1}), 400, "logit_bias.abc", "token ids"),
    ("model missing", json.dumps({"messages": [USER]}).encode(), 400, "model", "model: required parameter missing"),
    ("model empty", body(model=""), 400, "model", "non-empty string"),
    ("model type", body(model=5), 400, "model", "expected a string, got an integer"),
    ("user type", body(user=5), 400, "user", "expected a string or null"),
    ("messages missing", json.dumps({"model": "m"}).encode(), 400, "messages", "required parameter missing"),
    ("messages empty", body(messages=[]), 400, "messages", "non-empty list"),
    ("messages type", body(messages="hi"), 400, "messages", "expected an array, got a string"),
    ("message type", body(messages=["hi"]), 400, "messages[0]", "expected an object"),
    ("role missing", body(messages=[{"content": "x"}]), 400, "messages[0].role", "required parameter missing"),
    (
        "role unknown",
        body(messages=[{"role": "robot", "content": "x"}]),
        400,
        "messages[0].role",
        "invalid value 'robot' (expected one of system, developer, user, assistant, tool, function)",
    ),
    ("content missing", body(messages=[{"role": "user"}]), 400, "messages[0].content", "required parameter"),
    (
        "content type",
        body(messages=[{"role": "user", "content": 5}]),
        400,
        "messages[0].content",
        "expected a string or an array, got an integer",
    ),
    (
        "content empty list",
        body(messages=[{"role": "user", "content": []}]),
        400,
        "messages[0].content",
        "non-empty list of parts",
    ),
    (
        "part type unknown",
        body(messages=[{"role": "user", "content": [{"type": "hologram"}]}]),
        400,
        "messages[0].content[0].type",
        "invalid value 'hologram'",
    ),
    (
        "text part without text",
        body(messages=[{"role": "user", "content": [{"type": "text"}]}]),
        400,
        "messages[0].content[0].text",
        "required parameter missing",
    ),
    (
        "image part shape",
        body(messages=[{"role": "user", "content": [{"type": "image_url", "image_url": "x"}]}]),
        400,
        "messages[0].content[0].image_url",
        "expected an object",
    ),
    (
        "image in system",
        body(messages=[{"role": "system", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]),
        400,
        "messages[0].content[0].type",
        "text parts only",
    ),
    (
        "tool without id",
        body(messages=[{"role": "tool", "content": "x"}]),
        400,
        "messages[0].tool_call_id",
        "required parameter missing",
    ),
    (
        "tool with empty id",
        body(messages=[{"role": "tool", "content": "x", "tool_call_id": ""}]),
        400,
        "messages[0].tool_call_id",
        "non-empty",
    ),
    (
        "assistant empty",
        body(messages=[{"role": "assistant"}]),
        400,
        "messages[0].content",
        "required unless tool_calls",
    ),
    (
        "tool call shape",
        body(messages=[{"role": "assistant", "tool_calls": [{"id": "c", "function": {}}]}]),
        400,
        "messages[0].tool_calls[0].function.name",
        "required",
    ),
    ("tools type", body(tools={}), 400, "tools", "expected an array or null"),
    (
        "tool kind",
        body(tools=[{"type": "retrieval", "function": {"name": "f"}}]),
        400,
        "tools[0].type",
        "invalid enum value 'retrieval'",
    ),
    ("tool name", body(tools=[tool("bad name!")]), 400, "tools[0].function.name", "1-64 letters"),
    ("tool name long", body(tools=[tool("x" * 65)]), 400, "tools[0].function.name", "1-64"),
    ("tool parameters", body(tools=[tool(parameters=[1])]), 400, "tools[0].function.parameters", "JSON Schema object"),
    ("too many tools", body(tools=[tool(f"t{i}") for i in range(129)]), 400, "tools", "at most 128"),
    ("tool choice string", body(tools=[tool()], tool_choice="sometimes"), 400, "tool_choice", "one of none"),
    (
        "tool choice without tools",
        body(tool_choice={"type": "function", "function": {"name": "f"}}),
        400,
        "tool_choice",
        "requires tools",
    ),
    (
        "response format",
        body(response_format={"type": "yaml"}),
        400,
        "response_format.type",
        "expected one of text, json_object, json_schema",
    ),
    (
        "json_schema missing",
        body(response_format={"type": "json_schema"}),
        400,
        "response_format.json_schema",
        "required parameter missing",
    ),
    ("not an object", b"[1, 2]", 400, None, "request body: expected an object, got an array"),
    ("a string", b'"hi"', 400, None, "expected an object"),
    ("invalid json", b'{"model": "m",', 400, None, "not valid JSON"),
    ("acronym kept in upper case", b'{"model": "m", 1: 2}', 400, None, "not valid JSON: JSON is malformed"),
    ("trailing garbage", b'{"model": "m", "messages": []} x', 400, None, "not valid JSON"),
    ("empty body", b"", 400, None, "empty"),
    ("whitespace body", b"  \n", 400, None, "empty"),
    ("invalid utf-8 in a known field", b'{"model": "\xff", "messages": []}', 400, None, "UTF-8"),
    ("invalid utf-8 in an unknown field", body()[:-1] + b', "x": "\xc3\x28"}', 400, None, "UTF-8"),
    ("lone surrogate", body()[:-1] + b', "x": "\\ud800"}', 400, None, "not valid JSON"),
    (
        "deep nesting unknown",
        body()[:-1] + b', "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        400,
        None,
        "nested too deeply",
    ),
    (
        "deep nesting in a tool schema",
        body(tools=[tool(parameters={"a": 1})]).replace(b'{"a": 1}', b'{"a": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"),
        400,
        None,
        "nested too deeply",
    ),
    ("huge float", body()[:-1] + b', "temperature": 1e400}', 400, "temperature", "out of range"),
    ("huge int", body()[:-1] + b', "n": ' + b"9" * 5000 + b"}", 400, "n", "out of range"),
    ("big int", body(n=10**30), 400, "n", "n: must be <= 128, got 1e+30"),
    ("NaN", body()[:-1] + b', "temperature": NaN}', 400, None, "not valid JSON"),
    ("duplicate key counts last", body()[:-1] + b', "temperature": 0, "temperature": 9}', 400, "temperature", "<= 2"),
]


@pytest.mark.parametrize(("raw", "status", "param", "fragment"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID])
def test_invalid(raw: bytes, status: int, param: str | None, fragment: str) -> None:
    with pytest.raises(RequestInvalid) as caught:
        parse_chat(raw)
    error = caught.value
    assert (error.status, error.param) == (status, param), error
    assert fragment in error.message
    assert error.message.startswith(param) if param else True
    assert json.loads(error.body())["error"]["type"] == "invalid_request_error"


def test_size_limits() -> None:
    limits = LimitsConfig(max_body_bytes=200, max_messages=2, max_message_chars=10)
    with pytest.raises(RequestInvalid) as caught:
        parse_chat(body(junk="x" * 300), limits)
    assert (caught.value.status, caught.value.code) == (413, "request_too_large")
    with pytest.raises(RequestInvalid) as caught:
        parse_chat(body(messages=[USER] * 3), limits)
    assert (caught.value.status, caught.value.param, caught.value.code) == (400, "messages", "array_above_max_length")
    with pytest.raises(RequestInvalid) as caught:
        parse_chat(body(messages=[{"role": "user", "content": "x" * 11}]), limits)
    assert (caught.value.param, caught.value.code) == ("messages[0].content", "string_above_max_length")
    parse_chat(body(messages=[{"role": "user", "content": "x" * 10}] * 2), limits)


def test_summary() -> None:
    request = parse_chat(
        body(
            messages=[
                {"role": "system", "content": "You are terse."},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is "},
                        {"type": "image_url", "image_url": {"url": "data:"}},
                        {"type": "text", "text": "this?"},
                    ],
                },
            ],
            stream=True,
            stream_options={"include_usage": True},
            max_tokens=50,
            n=2,
            seed=7,
            tools=[tool()],
            user="u1",
        )
    )
    assert request.model == "chat"
    assert request.stream and request.include_usage
    assert (request.max_tokens, request.n, request.tools_count, request.user) == (50, 2, 1, "u1")
    assert request.has_images and request.deterministic
    assert request.prompt_text == "You are terse.\nWhat is this?"
    text_tokens = -(-len("You are terse.") // 4) + -(-len("What is this?") // 4)
    tool_tokens = -(-len("get_weather") // 4)
    assert request.prompt_tokens_estimate == (
        2 * TOKENS_PER_MESSAGE + text_tokens + TOKENS_PER_IMAGE + TOKENS_REPLY_PRIMING + tool_tokens
    )
    assert request.body.messages[0].content == "You are terse."


def test_summary_defaults() -> None:
    request = parse_chat(body())
    assert not request.stream and not request.include_usage and not request.has_images
    assert (request.max_tokens, request.n, request.tools_count) == (None, 1, 0)
    assert not request.deterministic
    assert parse_chat(body(temperature=0)).deterministic
    assert parse_chat(body(max_tokens=5, max_completion_tokens=9)).max_tokens == 9
    assert parse_chat(body(max_tokens=5, max_completion_tokens=9)).max_tokens_param == "max_completion_tokens"
    assert parse_chat(body(max_tokens=5)).max_tokens_param == "max_tokens"
    assert parse_chat(body(stream=True)).include_usage is False
    assert parse_chat(body(stream=True, stream_options={"include_usage": False})).include_usage is False
