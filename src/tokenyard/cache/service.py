"""``ResponseCache``: the cache objects of one gateway, built from ``config.cache`` (None when it is off)."""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from tokenyard.cache.coalesce import Singleflight
from tokenyard.cache.embed_batch import EmbedBatcher
from tokenyard.cache.exact import ExactCache
from tokenyard.cache.store import CacheStore, MemoryCacheStore, SharedCacheStore
from tokenyard.config.scaleout import CacheConfig
from tokenyard.state import SharedState
from tokenyard.telemetry.metrics import GatewayMetrics

if TYPE_CHECKING:
    from tokenyard.cache.semantic import Embedder, SemanticCache

KINDS = ("exact", "semantic")
RESULTS = ("hit", "miss", "bypass")


class ResponseCache:
    """Exact cache, optional semantic cache, singleflight and embedding batcher, with their metric children.

    ``lookup_seconds`` keeps the last exact lookups' durations (for ``benchmarks/cache.py``).
    """

    def __init__(self, config: CacheConfig, state: SharedState | None, metrics: GatewayMetrics,
                 embedder: Embedder | None = None) -> None:
        self.config = config
        ttl_s = config.ttl_ms / 1000
        store: CacheStore
        if config.store == "shared" and state is not None:
            store = SharedCacheStore(state, config.max_entry_bytes)
        else:
            store = MemoryCacheStore(config.max_entries, config.max_bytes)
        self.exact = ExactCache(store, ttl_s, config.max_entry_bytes)
        self.flights = Singleflight() if config.coalesce else None
        self.batcher = (EmbedBatcher(config.embed_batch_window_ms / 1000, config.embed_batch_max_inputs)
                        if config.embed_batch_window_ms > 0 else None)
        self.semantic: SemanticCache | None = None
        if config.semantic.enabled:
            from tokenyard.cache.semantic import MiniLMEmbedder, SemanticCache

            sem = config.semantic
            self.semantic = SemanticCache(embedder if embedder is not None else MiniLMEmbedder(), sem.threshold,
                                          sem.max_entries_per_tenant, ttl_s,
                                          state if config.store == "shared" else None, sem.refresh_ms / 1000)
        self._counts = {(k, r): metrics.cache_requests.labels(k, r) for k in KINDS for r in RESULTS}
        self._saved = {k: metrics.cache_tokens_saved.labels(k) for k in KINDS}
        self.lookup_seconds: deque[float] = deque(maxlen=100_000)

    def count(self, kind: str, result: str) -> None:
        self._counts[(kind, result)].inc()

    def saved(self, kind: str, tokens: int) -> None:
        if tokens > 0:
            self._saved[kind].inc(tokens)
