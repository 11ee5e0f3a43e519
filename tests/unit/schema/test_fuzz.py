"""Property tests: whatever the bytes or JSON, parsing either succeeds or raises RequestInvalid (4xx)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tokenyard.schema import RequestInvalid, parse_chat, parse_completion, parse_embedding
from tokenyard.schema.request import ParsedRequest

PARSERS: list[Callable[[bytes], ParsedRequest]] = [parse_chat, parse_completion, parse_embedding]
FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10,
)
# Bodies that look like requests, so the fuzzing reaches deep validation rather than stopping at "not JSON".
fields = st.sampled_from(
    [
        "model",
        "messages",
        "prompt",
        "input",
        "temperature",
        "top_p",
        "n",
        "stop",
        "max_tokens",
        "stream",
        "stream_options",
        "tools",
        "tool_choice",
        "response_format",
        "logprobs",
        "top_logprobs",
        "seed",
        "logit_bias",
        "best_of",
        "dimensions",
        "encoding_format",
        "user",
    ]
)
message = st.fixed_dictionaries(
    {"role": st.sampled_from(["system", "user", "assistant", "tool", "developer", "function", "x"])},
    optional={
        "content": json_values
        | st.lists(
            st.fixed_dictionaries(
                {"type": st.sampled_from(["text", "image_url", "file", "input_audio", "y"])},
                optional={"text": json_values, "image_url": json_values},
            ),
            max_size=3,
        ),
        "tool_call_id": json_values,
        "tool_calls": json_values,
        "name": json_values,
    },
)
requests = st.dictionaries(fields, json_values, max_size=8).flatmap(
    lambda extra: st.fixed_dictionaries(
        {"model": st.text(max_size=5) | json_values, "messages": st.lists(message, max_size=4)}
    ).map(lambda b: {**b, **extra})
)


def outcome(raw: bytes) -> None:
    """Every parser accepts ``raw`` or rejects it with a 4xx ``RequestInvalid``; nothing else escapes."""
    for parser in PARSERS:
        try:
            parser(raw)
        except RequestInvalid as error:
            assert error.status in (400, 413)
            assert error.message
            json.loads(error.body())


@settings(max_examples=300, deadline=None)
@given(raw=st.binary(max_size=300))
def test_arbitrary_bytes(raw: bytes) -> None:
    outcome(raw)


@FAST
@given(value=json_values)
def test_arbitrary_json(value: Any) -> None:
    outcome(json.dumps(value).encode())


@FAST
@given(value=requests)
def test_request_shaped_json(value: Any) -> None:
    outcome(json.dumps(value).encode())


@FAST
@given(value=requests, cut=st.integers(min_value=0, max_value=400), junk=st.binary(max_size=4))
def test_mangled_request_bytes(value: Any, cut: int, junk: bytes) -> None:
    raw = json.dumps(value).encode()
    outcome(raw[:cut] + junk + raw[cut:])
