"""The exact-match cache: the answer stored under a request's normalised key (``normalize.cache_key``)."""

from __future__ import annotations

from tokenyard.cache.store import CachedAnswer, CacheStore


class ExactCache:
    """Looks answers up by key and stores successful ones for ``ttl_s``; larger than ``max_entry_bytes`` is
    never stored (a huge answer would evict many small ones)."""

    def __init__(self, store: CacheStore, ttl_s: float, max_entry_bytes: int) -> None:
        self.store = store
        self.ttl_s = ttl_s
        self.max_entry_bytes = max_entry_bytes

    async def lookup(self, key: str) -> CachedAnswer | None:
        return await self.store.get(key)

    async def save(self, key: str, answer: CachedAnswer) -> bool:
        if answer.status != 200 or len(answer.body) > self.max_entry_bytes:
            return False
        return await self.store.put(key, answer, self.ttl_s)
