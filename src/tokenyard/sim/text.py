"""Deterministic text: a toy tokenizer for prompts and a seeded word stream for answers.

Tokenizer: one token per 4 characters of the prompt text (OpenAI's rule of thumb), rounded up, at least 1.
Chat messages are rendered into one prompt string (``<|role|>content\\n`` per message, then ``<|assistant|>``)
before counting, so a shared conversation prefix is a shared token prefix. Prefix-cache block hashes are
chained over 64-character slices (16 tokens), exactly the blocks a 4-char tokenizer would produce.

Answers: token ``k`` of a request is the word ``VOCAB[(start + k * stride) % len(VOCAB)]`` (with a leading space),
``start``/``stride`` drawn from the simulator's seeded generator, so a seed fixes every answer's text.
"""

from __future__ import annotations

import json
from typing import Any

from tokenyard.sim.params import BLOCK_SIZE

CHARS_PER_TOKEN = 4
BLOCK_CHARS = CHARS_PER_TOKEN * BLOCK_SIZE

_WORDS = (
        "the of and to in is that for it as was with be by on not he this are or his from at which but have an "
        "they you were her she there one all we their been has would more when if will so no what up out can "
        "about into time them some could other then than its only two first also new like over these many "
        "model token stream batch queue cache prefix block engine request answer latency signal router"
)
VOCAB: tuple[str, ...] = tuple(" " + word for word in _WORDS.split())
# The JSON-escaped form of each word, ready to splice into an SSE chunk template.
VOCAB_JSON: tuple[bytes, ...] = tuple(json.dumps(word)[1:-1].encode() for word in VOCAB)


def count_tokens(text: str) -> int:
    """Tokens in ``text`` under the 4-characters-per-token rule (at least 1)."""
    return max(1, -(-len(text) // CHARS_PER_TOKEN))


def render_chat(messages: list[Any]) -> str:
    """The prompt string for chat ``messages`` (already validated as a list of dicts with a role)."""
    parts: list[str] = []
    for message in messages:
        parts.append(f"<|{message.get('role', '')}|>{_content_text(message.get('content'))}\n")
    parts.append("<|assistant|>")
    return "".join(parts)


def _content_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: only text parts carry tokens here
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return str(content)


def block_hashes(text: str, salt: str = "") -> list[int]:
    """Chained hashes of the prompt's full 16-token blocks (a partial last block is never cached)."""
    hashes: list[int] = []
    parent = hash(("tokenyard-sim", salt))
    for i in range(len(text) // BLOCK_CHARS):
        parent = hash((parent, text[i * BLOCK_CHARS : (i + 1) * BLOCK_CHARS]))
        hashes.append(parent)
    return hashes


def answer_text(start: int, stride: int, count: int) -> str:
    """The full answer of ``count`` tokens (non-streaming responses)."""
    n = len(VOCAB)
    return "".join(VOCAB[(start + k * stride) % n] for k in range(count))
