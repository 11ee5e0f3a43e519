"""Config of the response cache (``cache:``) and of running several replicas on one shared state (``scaleout:``).

See docs/caching.md and docs/operations.md.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from tokenyard.config.base import NonNegativeInt, PositiveInt, Section

Similarity = Annotated[float, msgspec.Meta(gt=0.0, le=1.0)]


class SemanticCacheConfig(Section, frozen=True, kw_only=True):
    """Semantic cache: a prompt whose MiniLM embedding is at least ``threshold`` cosine-similar to a cached
    prompt of the same tenant and model gets that answer. Needs the ``semantic`` extra (torch, the model)."""

    enabled: bool = False
    threshold: Similarity = 0.9
    max_entries_per_tenant: PositiveInt = 10_000
    refresh_ms: PositiveInt = 1_000  # how often a replica reloads the shared index from Redis


class CacheConfig(Section, frozen=True, kw_only=True):
    """Response cache for deterministic requests (temperature 0, a seed, or ``x-tokenyard-cache: on``).

    Off by default (answers are replayed, not regenerated: opt in per deployment). ``store`` is ``memory``
    (this process) or ``shared`` (the ``state:`` backend, so replicas share entries).
    """

    enabled: bool = False
    store: Literal["memory", "shared"] = "shared"
    ttl_ms: PositiveInt = 3_600_000
    max_entries: PositiveInt = 10_000
    max_bytes: PositiveInt = 256 * 1024 * 1024
    max_entry_bytes: PositiveInt = 4 * 1024 * 1024
    coalesce: bool = True
    embed_batch_window_ms: NonNegativeInt = 5  # 0 switches embedding micro-batching off
    embed_batch_max_inputs: PositiveInt = 64
    semantic: SemanticCacheConfig = msgspec.field(default_factory=SemanticCacheConfig)


class ScaleOutConfig(Section, frozen=True, kw_only=True):
    """Limits shared by every replica when ``state`` is a Redis URL (ignored with ``state: memory``).

    ``fail_open``: when Redis is unreachable, admit (True) or refuse with 503 (False) what the shared limits
    would have decided. ``endpoint_budget``: concurrent requests per backend endpoint across all replicas
    (None: no shared budget); ``endpoint_budgets`` sets it per endpoint name (over ``endpoint_budget``).
    ``lease_ttl_ms``: a crashed replica's budget slots free themselves after this.
    """

    fail_open: bool = True
    endpoint_budget: PositiveInt | None = None
    endpoint_budgets: dict[str, PositiveInt] = msgspec.field(default_factory=dict)
    lease_ttl_ms: PositiveInt = 10_000
    budget_wait_ms: PositiveInt = 30_000
