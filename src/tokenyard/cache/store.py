"""Where cached answers live: this process (``MemoryCacheStore``) or the shared state (``SharedCacheStore``).

Entries are ``CachedAnswer`` values encoded with msgpack. Both stores bound an entry's lifetime (TTL) and size;
the memory store also bounds the number of entries and their total bytes (least recently used goes first). On
the shared state the bounds are the entry TTL and Redis' ``maxmemory`` policy. A cache never fails a request:
an unreachable Redis reads as a miss and a write is skipped.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

import msgspec

from tokenyard.state import SharedState, StateUnavailable

log = logging.getLogger("tokenyard.cache")


class CachedAnswer(msgspec.Struct, frozen=True, array_like=True):
    """One stored answer: the body exactly as relayed (SSE bytes with ``id:`` lines for streams) and its usage."""

    status: int
    content_type: str
    body: bytes
    stream: bool
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(CachedAnswer)


def encode_answer(answer: CachedAnswer) -> bytes:
    return _ENCODER.encode(answer)


def decode_answer(data: bytes) -> CachedAnswer | None:
    try:
        return _DECODER.decode(data)
    except msgspec.DecodeError:
        return None  # written by another version: a miss


class CacheStore(Protocol):
    async def get(self, key: str) -> CachedAnswer | None: ...

    async def put(self, key: str, answer: CachedAnswer, ttl_s: float) -> bool: ...


class MemoryCacheStore:
    """LRU over at most ``max_entries`` entries and ``max_bytes`` body bytes, each expiring after its TTL."""

    def __init__(self, max_entries: int, max_bytes: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, CachedAnswer]] = OrderedDict()
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get_now(self, key: str) -> CachedAnswer | None:
        found = self._entries.get(key)
        if found is None:
            return None
        expires, answer = found
        if expires <= self._clock():
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return answer

    def put_now(self, key: str, answer: CachedAnswer, ttl_s: float) -> bool:
        size = len(answer.body)
        if size > self.max_bytes:
            return False
        if key in self._entries:
            self._drop(key)
        self._entries[key] = (self._clock() + ttl_s, answer)
        self.bytes += size
        while len(self._entries) > self.max_entries or self.bytes > self.max_bytes:
            oldest = next(iter(self._entries))
            self._drop(oldest)
        return True

    def _drop(self, key: str) -> None:
        _, answer = self._entries.pop(key)
        self.bytes -= len(answer.body)

    async def get(self, key: str) -> CachedAnswer | None:
        return self.get_now(key)

    async def put(self, key: str, answer: CachedAnswer, ttl_s: float) -> bool:
        return self.put_now(key, answer, ttl_s)


class SharedCacheStore:
    """Entries in the ``SharedState`` KV under ``cache:<key>``, so every replica reads what one wrote."""

    def __init__(self, state: SharedState, max_entry_bytes: int) -> None:
        self._state = state
        self.max_entry_bytes = max_entry_bytes

    async def get(self, key: str) -> CachedAnswer | None:
        try:
            data = await self._state.get("cache:" + key)
        except StateUnavailable:
            return None
        return decode_answer(data) if data is not None else None

    async def put(self, key: str, answer: CachedAnswer, ttl_s: float) -> bool:
        if len(answer.body) > self.max_entry_bytes:
            return False
        try:
            return await self._state.set("cache:" + key, encode_answer(answer), ttl_s=ttl_s)
        except StateUnavailable:
            log.debug("cache write skipped: shared state unavailable")
            return False
