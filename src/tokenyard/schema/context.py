"""Early rejection of requests that cannot fit the model's context window (``max_context_tokens``).

Only what is certain (or nearly so) is rejected, because the prompt count is an estimate (``estimate.py``):
``max_tokens`` alone above the window; an exact (token-id) prompt plus ``max_tokens`` above it; or an estimated
text prompt more than ``TEXT_ESTIMATE_MARGIN`` times the window (an estimate that far off would be unusual). Requests
near the limit go upstream, whose tokenizer decides.
"""

from __future__ import annotations

from tokenyard.schema.errors import RequestInvalid
from tokenyard.schema.request import ParsedRequest

TEXT_ESTIMATE_MARGIN = 2.0
CODE = "context_length_exceeded"


def check_context_window(request: ParsedRequest, max_context_tokens: int | None) -> None:
    """Raise ``RequestInvalid`` (400, ``context_length_exceeded``) when the request certainly cannot fit."""
    if max_context_tokens is None:
        return
    wanted = request.max_tokens or 0
    field = request.max_tokens_param  # max_tokens or max_completion_tokens: the field the client sent
    if wanted > max_context_tokens:
        raise RequestInvalid(
            400,
            f"{field}: {wanted} is more than the model's context window of {max_context_tokens} tokens",
            field,
            CODE,
        )
    prompt = request.prompt_tokens_estimate
    if request.prompt_tokens_exact and prompt + wanted > max_context_tokens:
        raise RequestInvalid(
            400,
            f"prompt: {prompt} prompt tokens + {wanted} {field} exceed the model's context window of "
            f"{max_context_tokens} tokens",
            "prompt",
            CODE,
        )
    if not request.prompt_tokens_exact and prompt > TEXT_ESTIMATE_MARGIN * max_context_tokens:
        param = request.prompt_param
        raise RequestInvalid(
            400,
            f"{param}: about {prompt} prompt tokens (estimated) exceed the model's context window of "
            f"{max_context_tokens} tokens",
            param,
            CODE,
        )
