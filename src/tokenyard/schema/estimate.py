"""The prompt-token estimate used for admission and token rate limits before the upstream's real count.

The estimator is deliberately simple and cheap (no tokenizer): ceil(characters / 4) for text, which is close to
BPE tokenizers on English text (OpenAI's rule of thumb); plus 4 tokens per chat message for the role and the
template's separators and 3 tokens to prime the reply (OpenAI's cookbook counting); 765 tokens per image (an
OpenAI high-detail 1024x1024 image; 85 with ``detail: low``) and 256 per other media part (audio, video, file);
tool definitions count as their JSON text. Token-id prompts count exactly. Usage reported by the upstream
replaces the estimate afterwards (see the rate limiter's reconciliation).
"""

from __future__ import annotations

CHARS_PER_TOKEN = 4
TOKENS_PER_MESSAGE = 4
TOKENS_REPLY_PRIMING = 3
TOKENS_PER_IMAGE = 765
TOKENS_PER_LOW_DETAIL_IMAGE = 85
TOKENS_PER_OTHER_MEDIA = 256


def text_tokens(characters: int) -> int:
    """ceil(characters / 4)."""
    return -(-characters // CHARS_PER_TOKEN)
