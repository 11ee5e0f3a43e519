"""The KV cache: a pool of fixed-size blocks with prefix caching and LRU eviction (pure, no I/O).

Modelled on vLLM V1's ``BlockPool``/``KVCacheManager``: a block in use has a reference count; a block whose count
drops to 0 joins the tail of the free list but keeps its content hash, so a later request with the same prefix can
take it back (a prefix-cache hit). Allocation takes blocks from the head of the free list (least recently freed),
dropping their hash: that is the eviction. A finished request frees its blocks in reverse order, so its last
blocks (the least shareable) are evicted first.
"""

from __future__ import annotations

from collections import OrderedDict


class KVCache:
    """``num_blocks`` blocks; hashes are opaque ints (chained block hashes from ``text.block_hashes``)."""

    def __init__(self, num_blocks: int) -> None:
        self.num_blocks = num_blocks
        self._refs: dict[int, int] = {}  # block id -> reference count (absent = 0)
        self._hash_of: dict[int, int] = {}  # block id -> content hash, for cached blocks
        self._cached: dict[int, int] = {}  # content hash -> block id
        # Blocks never used yet are ids >= _fresh; they come before every freed block in LRU order (as in vLLM,
        # whose free queue starts with all blocks in order), so they are not materialised up front.
        self._fresh = 0
        # Used blocks with reference count 0, least recently freed first.
        self._free: OrderedDict[int, None] = OrderedDict()
        self.queries = 0  # prompt tokens looked up
        self.hits = 0  # of those, tokens found cached

    @property
    def free_blocks(self) -> int:
        return len(self._free) + self.num_blocks - self._fresh

    @property
    def usage(self) -> float:
        """Fraction of blocks referenced by a running request (0..1), like ``vllm:kv_cache_usage_perc``."""
        return 1.0 - self.free_blocks / self.num_blocks

    def cached_prefix(self, hashes: list[int], max_blocks: int) -> list[int]:
        """Block ids of the longest cached prefix of ``hashes`` (at most ``max_blocks``), not yet referenced."""
        found: list[int] = []
        for h in hashes[:max_blocks]:
            block = self._cached.get(h)
            if block is None:
                break
            found.append(block)
        return found

    def record_lookup(self, query_tokens: int, hit_tokens: int) -> None:
        self.queries += query_tokens
        self.hits += hit_tokens

    def can_allocate(self, hit_blocks: list[int], new_blocks: int) -> bool:
        """Whether ``hit_blocks`` can be referenced and ``new_blocks`` fresh ones taken at the same time."""
        # Hit blocks that sit in the free list are taken out of it, so they do not count as free for new ones.
        reclaimed = sum(1 for b in hit_blocks if not self._refs.get(b))
        return new_blocks <= self.free_blocks - reclaimed

    def touch(self, blocks: list[int]) -> None:
        """Reference cached blocks (a prefix hit)."""
        for b in blocks:
            refs = self._refs.get(b, 0)
            if refs == 0:
                del self._free[b]
            self._refs[b] = refs + 1

    def allocate(self, count: int) -> list[int]:
        """Take ``count`` blocks from the head of the free list, evicting their cached content."""
        if count > self.free_blocks:
            raise RuntimeError("KV cache exhausted (call can_allocate first)")
        fresh = min(count, self.num_blocks - self._fresh)
        blocks = list(range(self._fresh, self._fresh + fresh))
        self._fresh += fresh
        for _ in range(count - fresh):
            b, _unused = self._free.popitem(last=False)
            old = self._hash_of.pop(b, None)
            if old is not None and self._cached.get(old) == b:
                del self._cached[old]
            blocks.append(b)
        refs = self._refs
        for b in blocks:
            refs[b] = 1
        return blocks

    def free(self, blocks: list[int]) -> None:
        """Drop one reference to each block, last block first; unreferenced blocks join the free list's tail."""
        refs = self._refs
        for b in reversed(blocks):
            left = refs[b] - 1
            if left == 0:
                del refs[b]
                self._free[b] = None
            else:
                refs[b] = left

    def publish(self, block: int, content_hash: int) -> None:
        """Mark a now-full block as holding ``content_hash`` so later requests can hit it."""
        if block not in self._hash_of and content_hash not in self._cached:
            self._hash_of[block] = content_hash
            self._cached[content_hash] = block

    def is_cached(self, content_hash: int) -> bool:
        return content_hash in self._cached

    def reset_prefix_cache(self) -> None:
        """Forget every cached hash (blocks in use stay allocated)."""
        self._cached.clear()
        self._hash_of.clear()
