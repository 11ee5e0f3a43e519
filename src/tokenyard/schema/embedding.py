"""``POST /v1/embeddings``: validation and the request summary the gateway routes on."""

from __future__ import annotations

from typing import Literal

import msgspec

from tokenyard.config.server import LimitsConfig
from tokenyard.schema.checks import check_range
from tokenyard.schema.decoding import decode_body
from tokenyard.schema.errors import RequestInvalid
from tokenyard.schema.prompts import PromptInput, summarise_prompt
from tokenyard.schema.request import ParsedRequest

MAX_INPUTS = 2048  # OpenAI's limit on inputs per embeddings request


class EmbeddingBody(msgspec.Struct):
    """The fields of an embeddings request that tokenyard checks; others pass through untouched."""

    model: str
    input: PromptInput
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: int | None = None
    user: str | None = None


class EmbeddingRequest(ParsedRequest, frozen=True, kw_only=True):
    """A validated embeddings request; ``n`` is the number of inputs."""

    body: EmbeddingBody

    @property
    def prompt_param(self) -> str:
        return "input"


def parse_embedding(body: bytes, limits: LimitsConfig | None = None) -> EmbeddingRequest:
    """Validate an embeddings request body; raise ``RequestInvalid`` (400/413) naming the parameter."""
    limits = limits or LimitsConfig()
    request = decode_body(body, EmbeddingBody, limits.max_body_bytes)
    if not request.model:
        raise RequestInvalid(400, "model: must be a non-empty string", "model")
    check_range("dimensions", request.dimensions, 1, 65_536)
    summary = summarise_prompt(request.input, "input", limits.max_message_chars, allow_empty_string=False)
    if summary.count > MAX_INPUTS:
        raise RequestInvalid(
            400,
            f"input: at most {MAX_INPUTS} inputs are allowed, got {summary.count}",
            "input",
            "array_above_max_length",
        )
    return EmbeddingRequest(
        model=request.model,
        n=summary.count,
        prompt_tokens_estimate=summary.tokens,
        prompt_text=summary.text,
        prompt_tokens_exact=summary.exact,
        deterministic=True,
        user=request.user,
        body=request,
    )
