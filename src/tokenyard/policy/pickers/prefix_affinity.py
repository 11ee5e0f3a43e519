"""Prefix affinity: requests sharing a prompt prefix go to the same endpoint, so its KV cache is warm.

The key is the prompt's leading blocks (by default 256 tokens' worth of characters, cut to whole 16-token
blocks), hashed onto a ring with virtual nodes. Bounded load (c = 1.25) walks on to the next endpoint when the
owner already holds more than ``c`` times its share of the in-flight requests, so a hot prefix spills over
instead of overloading one server.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence

from tokenyard.policy.consistent_hash import DEFAULT_LOAD_FACTOR, DEFAULT_VNODES, bounded_walk
from tokenyard.policy.pickers.base import available
from tokenyard.policy.pickers.endpoint import EndpointView, RequestFeatures
from tokenyard.policy.pickers.least_load import LeastLoadPicker
from tokenyard.policy.pickers.ring_cache import RingCache

# A token is about four characters of English text; vLLM's default KV block is 16 tokens.
CHARS_PER_TOKEN = 4
DEFAULT_PREFIX_TOKENS = 256
DEFAULT_BLOCK_TOKENS = 16


def prefix_key(
    prompt: str, prefix_tokens: int = DEFAULT_PREFIX_TOKENS, block_tokens: int = DEFAULT_BLOCK_TOKENS
) -> str:
    """The hashed part of a prompt: its first ``prefix_tokens`` worth of characters, cut to whole blocks.

    A prompt shorter than one block is used whole. Cutting to blocks mirrors how the server caches (only full
    blocks are shared), so two prompts that differ only after the last full block share the key.
    """
    block = block_tokens * CHARS_PER_TOKEN
    head = prompt[: prefix_tokens * CHARS_PER_TOKEN]
    whole = len(head) - len(head) % block
    return head[:whole] if whole > 0 else head


class PrefixAffinityPicker:
    """Consistent hashing of the prompt prefix with bounded load; least-load when there is no prompt."""

    name = "prefix-affinity"

    def __init__(
        self,
        rng: random.Random,
        load_factor: float = DEFAULT_LOAD_FACTOR,
        vnodes: int = DEFAULT_VNODES,
        prefix_tokens: int = DEFAULT_PREFIX_TOKENS,
        block_tokens: int = DEFAULT_BLOCK_TOKENS,
    ) -> None:
        if load_factor <= 1.0:
            raise ValueError("load_factor must be greater than 1")
        self._c = load_factor
        self._rings = RingCache(vnodes)
        self._prefix_tokens = prefix_tokens
        self._block_tokens = block_tokens
        self._fallback = LeastLoadPicker(rng)

    def filter(self, candidates: Sequence[EndpointView], request: RequestFeatures) -> list[EndpointView]:
        return available(candidates)

    def _walk(self, pool: Sequence[EndpointView], request: RequestFeatures) -> Iterator[str]:
        """The endpoints in bounded ring order for the request's prefix (lazy: a pick needs only the first)."""
        ring = self._rings.ring(pool)
        loads = {e.name: float(e.inflight_requests) for e in pool}
        capacity = {e.name: e.effective_weight for e in pool}
        key = prefix_key(request.prompt_prefix, self._prefix_tokens, self._block_tokens)
        return bounded_walk(ring, key, loads, self._c, capacity)

    def score(self, candidates: Sequence[EndpointView], request: RequestFeatures) -> dict[str, float]:
        if not request.prompt_prefix:
            return self._fallback.score(candidates, request)
        order = list(self._walk(candidates, request))
        scores = dict.fromkeys((c.name for c in candidates), 0.0)
        for rank, name in enumerate(order):
            scores[name] = 1.0 - rank / len(candidates)
        return scores

    def pick(self, candidates: Sequence[EndpointView], request: RequestFeatures) -> EndpointView | None:
        pool = self.filter(candidates, request)
        if not pool or not request.prompt_prefix:
            return self._fallback.pick(pool, request)
        first = next(self._walk(pool, request), None)
        if first is None:
            return self._fallback.pick(pool, request)
        return next(e for e in pool if e.name == first)
