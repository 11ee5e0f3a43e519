"""``POST /v1/completions``: validation and the request summary the gateway routes on."""

from __future__ import annotations

import msgspec

from tokenyard.config.server import LimitsConfig
from tokenyard.schema.checks import (
    check_logit_bias,
    check_max_tokens,
    check_range,
    check_sampling,
    check_stop,
    check_stream_options,
)
from tokenyard.schema.decoding import decode_body
from tokenyard.schema.errors import RequestInvalid
from tokenyard.schema.parts import StreamOptions
from tokenyard.schema.prompts import PromptInput, summarise_prompt
from tokenyard.schema.request import ParsedRequest


class CompletionBody(msgspec.Struct):
    """The fields of a (legacy) completion request that tokenyard checks; others pass through untouched."""

    model: str
    prompt: PromptInput
    suffix: str | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    temperature: float | None = None
    top_p: float | None = None
    n: int | None = None
    best_of: int | None = None
    stop: str | list[str] | None = None
    logprobs: int | None = None
    echo: bool | None = None
    max_tokens: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    logit_bias: dict[str, float] | None = None
    seed: int | None = None
    user: str | None = None


class CompletionRequest(ParsedRequest, frozen=True, kw_only=True):
    """A validated completion request; ``n`` counts every prompt of a batched request."""

    body: CompletionBody


def parse_completion(body: bytes, limits: LimitsConfig | None = None) -> CompletionRequest:
    """Validate a completion request body; raise ``RequestInvalid`` (400/413) naming the parameter."""
    limits = limits or LimitsConfig()
    request = decode_body(body, CompletionBody, limits.max_body_bytes)
    if not request.model:
        raise RequestInvalid(400, "model: must be a non-empty string", "model")
    check_sampling(
        request.temperature, request.top_p, request.n, request.presence_penalty, request.frequency_penalty, request.seed
    )
    check_max_tokens("max_tokens", request.max_tokens)
    check_stop(request.stop)
    check_stream_options(request.stream, request.stream_options is not None)
    check_logit_bias(request.logit_bias)
    check_range("logprobs", request.logprobs, 0, 5)
    check_range("best_of", request.best_of, 1, 20)
    n = request.n or 1
    if request.best_of is not None and request.best_of < n:
        raise RequestInvalid(400, f"best_of: must be >= n ({n}), got {request.best_of}", "best_of")
    prompt = summarise_prompt(request.prompt, "prompt", limits.max_message_chars, allow_empty_string=True)
    if prompt.count > limits.max_messages:
        raise RequestInvalid(
            400,
            f"prompt: at most {limits.max_messages} prompts are allowed, got {prompt.count}",
            "prompt",
            "array_above_max_length",
        )
    return CompletionRequest(
        model=request.model,
        stream=bool(request.stream),
        include_usage=bool(request.stream and request.stream_options and request.stream_options.include_usage),
        max_tokens=request.max_tokens,
        n=n * prompt.count,
        prompt_tokens_estimate=prompt.tokens,
        prompt_text=prompt.text,
        prompt_tokens_exact=prompt.exact,
        deterministic=request.temperature == 0 or request.seed is not None,
        user=request.user,
        body=request,
    )
