"""The log operations a pipeline needs, as one small Protocol, and ``open_log(url)``.

Semantics (both implementations, checked by tests/integration/pipeline/test_streams.py on both):
- ``append`` adds an entry and returns its id; ids grow, ``"<n>-<m>"`` like Redis Streams.
- ``append_once(stream, dedupe_key, fields)`` appends unless an entry with that key was appended before (returns
  ``(id, False)`` for the earlier one): what makes sinks idempotent under redelivery.
- Consumer groups: ``read_group`` hands each entry to one consumer of the group and keeps it pending until
  ``ack``; ``claim_idle`` moves entries pending longer than ``min_idle_ms`` to the caller (a dead worker's work)
  and counts each hand-out in ``Entry.deliveries``.
- ``read_after`` tails a stream without a group (every reader sees every entry: the control stream).
- ``lag`` is what a group has still to finish: entries never delivered plus entries pending.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Entry:
    id: str
    fields: dict[str, str]
    deliveries: int = 1


class StreamLog(Protocol):
    async def append(self, stream: str, fields: dict[str, str], maxlen: int | None = None) -> str: ...

    async def append_once(self, stream: str, dedupe_key: str, fields: dict[str, str]) -> tuple[str, bool]: ...

    async def ensure_group(self, stream: str, group: str) -> None: ...

    async def read_group(self, stream: str, group: str, consumer: str, count: int,
                         block_ms: int) -> list[Entry]: ...

    async def ack(self, stream: str, group: str, ids: list[str]) -> None: ...

    async def claim_idle(self, stream: str, group: str, consumer: str, min_idle_ms: int,
                         count: int) -> list[Entry]: ...

    async def read_range(self, stream: str, start: str = "-", end: str = "+",
                         count: int | None = None) -> list[Entry]: ...

    async def read_after(self, stream: str, after_id: str, count: int, block_ms: int) -> list[Entry]: ...

    async def lag(self, stream: str, group: str) -> int: ...

    async def length(self, stream: str) -> int: ...

    async def close(self) -> None: ...


def open_log(url: str) -> StreamLog:
    """``redis://HOST:PORT/DB`` -> Redis Streams; ``sqlite:///PATH`` or a plain file path -> embedded SQLite."""
    if url.startswith(("redis://", "rediss://", "unix://")):
        from tokenyard.pipeline.redis_log import RedisStreamLog

        return RedisStreamLog(url)
    from tokenyard.pipeline.sqlite_log import SqliteStreamLog

    path = url.removeprefix("sqlite://") if url.startswith("sqlite://") else url
    return SqliteStreamLog(path)


def id_seq(entry_id: str) -> tuple[int, int]:
    """``"12-3"`` -> ``(12, 3)``; ``"12"`` -> ``(12, 0)`` (for range bounds and ordering)."""
    head, _, tail = entry_id.partition("-")
    return int(head), int(tail or 0)
