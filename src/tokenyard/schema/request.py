"""What the gateway needs to know about a request, computed once while validating it."""

from __future__ import annotations

import msgspec


class ParsedRequest(msgspec.Struct, frozen=True, kw_only=True):
    """The summary of a validated OpenAI request; the raw body is forwarded upstream untouched.

    ``max_tokens`` is ``max_completion_tokens`` or ``max_tokens`` as sent (None: the upstream's default);
    ``max_tokens_param`` names the field it came from, so error messages name what the client sent.
    ``prompt_tokens_estimate`` follows ``tokenyard.schema.estimate``. ``prompt_text`` is the prompt as text, for
    prefix hashing and caching: message contents joined with newlines (token-id prompts as space-separated
    ids). ``deterministic`` is True when ``temperature`` is 0 or a ``seed`` is given (the same request should
    give the same answer, so it may be cached); embeddings are always deterministic. ``prompt_tokens_exact`` is
    True when the prompt was given as token ids, so the estimate is the exact count.
    """

    model: str
    stream: bool = False
    include_usage: bool = False
    max_tokens: int | None = None
    max_tokens_param: str = "max_tokens"
    n: int = 1
    prompt_tokens_estimate: int = 0
    prompt_tokens_exact: bool = False
    prompt_text: str = ""
    has_images: bool = False
    tools_count: int = 0
    deterministic: bool = False
    user: str | None = None

    @property
    def prompt_param(self) -> str:
        """The name of the body field holding the prompt (for error messages)."""
        return "prompt"
