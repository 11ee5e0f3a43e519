"""The EventLog seam for streaming-first pipelines: an append-only log with consumer groups.

Semantics follow Redis Streams, and the embedded SQLite log implements the same ones (one contract suite runs on
both): ids are ``"<ms>-<seq>"`` and strictly increasing per stream; a consumer group hands each new entry to one
consumer and keeps it *pending* (with a delivery count) until acked; entries of a consumer that died are
claimed by another after ``min_idle_s``; an entry delivered ``max_deliveries`` times without an ack is moved to
``<stream>:dead`` instead of being delivered again (poison events). Delivery is at-least-once: sinks must be
idempotent by entry id.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple, Protocol, runtime_checkable

DEAD_SUFFIX = ":dead"
DEDUPE_INFIX = ":dedupe:"  # Redis: the record of an append_once key is ``<stream>:dedupe:<key>``
# Fields added to an entry moved to the dead-letter stream (beside the original fields).
DEAD_ID, DEAD_GROUP, DEAD_DELIVERIES, DEAD_REASON = (
    "dead_letter.id", "dead_letter.group", "dead_letter.deliveries", "dead_letter.reason")


class EventLogUnavailable(Exception):
    """The event-log backend did not answer in time."""


class GroupNotFound(LookupError):
    """The consumer group (or its stream) does not exist: create it with ``create_group``."""


class Entry(NamedTuple):
    """One event: ``deliveries`` is how often the group has delivered it (0 for plain range reads)."""

    id: str
    fields: dict[str, str]
    deliveries: int


class PendingEntry(NamedTuple):
    id: str
    consumer: str
    idle_s: float
    deliveries: int


class GroupInfo(NamedTuple):
    """``lag``: entries not yet delivered to any consumer; ``pending``: delivered but not acked."""

    pending: int
    lag: int
    last_delivered_id: str
    consumers: int


def dead_stream(stream: str) -> str:
    return stream + DEAD_SUFFIX


@runtime_checkable
class EventLog(Protocol):
    async def append(self, stream: str, fields: Mapping[str, str], *, maxlen: int | None = None) -> str:
        """Append an entry and return its id; ``maxlen`` trims the oldest entries beyond that many."""
        ...

    async def append_many(self, stream: str, records: Sequence[Mapping[str, str]]) -> list[str]:
        """Append several entries in order with one round trip (one transaction on SQLite); their ids."""
        ...

    async def append_once(
        self, stream: str, dedupe_key: str, fields: Mapping[str, str], *, maxlen: int | None = None,
        ttl_s: float | None = None,
    ) -> tuple[str, bool]:
        """Append unless an entry with ``dedupe_key`` was appended to ``stream`` before (within ``ttl_s``).

        Returns ``(id, True)`` for a new entry, ``(earlier id, False)`` for a duplicate: what makes a sink that
        writes results to a stream idempotent under redelivery (dedupe by source event id).
        """
        ...

    async def create_group(self, stream: str, group: str, start_id: str = "0") -> bool:
        """Create a group (and the stream if needed) reading after ``start_id`` (``"0"``: all, ``"$"``: new).

        Returns False if the group already existed (it is left as it is).
        """
        ...

    async def read_group(
        self, stream: str, group: str, consumer: str, *, count: int = 10, block_s: float | None = None
    ) -> list[Entry]:
        """Up to ``count`` entries never delivered to this group, now pending for ``consumer``.

        With ``block_s`` waits up to that long for at least one. Raises ``GroupNotFound``.
        """
        ...

    async def ack(self, stream: str, group: str, ids: Sequence[str]) -> int:
        """Mark entries processed; returns how many were pending."""
        ...

    async def pending(
        self, stream: str, group: str, *, count: int = 100, consumer: str | None = None
    ) -> list[PendingEntry]:
        """Pending entries, oldest first."""
        ...

    async def claim_idle(
        self, stream: str, group: str, consumer: str, min_idle_s: float, *, count: int = 10,
        max_deliveries: int | None = None,
    ) -> list[Entry]:
        """Take over entries pending for at least ``min_idle_s`` (their consumer died), like XAUTOCLAIM.

        Each claimed entry's delivery count is incremented. An entry already delivered ``max_deliveries`` times
        is dead-lettered (appended to ``<stream>:dead`` and acked) instead of returned. Entries trimmed from the
        stream meanwhile are dropped from the pending list.
        """
        ...

    async def touch(self, stream: str, group: str, consumer: str, ids: Sequence[str]) -> int:
        """A live consumer's heartbeat: reset the idle time of those ``ids`` still pending for ``consumer``, without
        counting a delivery, so that ``claim_idle`` by others takes only a stopped consumer's entries. Entries
        acked or pending for another consumer are left alone. Returns how many were touched."""
        ...

    async def dead_letter(self, stream: str, group: str, entry_id: str, reason: str = "") -> bool:
        """Move a pending entry to ``<stream>:dead`` and ack it (a consumer gave up on it)."""
        ...

    async def read_range(
        self, stream: str, start: str = "-", end: str = "+", *, count: int | None = None
    ) -> list[Entry]:
        """Entries with ``start <= id <= end`` oldest first, for replay (``(id`` makes a bound exclusive)."""
        ...

    async def read_after(
        self, stream: str, after: str = "0-0", *, count: int = 100, block_s: float | None = None
    ) -> list[Entry]:
        """Up to ``count`` entries with ids above ``after``, without a group (XREAD): every reader sees every
        entry, e.g. a control stream. With ``block_s`` waits up to that long for at least one. Pass the last id
        seen to follow a stream; ``"$"`` means the stream's last id at the time of the call."""
        ...

    async def length(self, stream: str) -> int: ...

    async def group_info(self, stream: str, group: str) -> GroupInfo:
        """Pending count, lag and consumers of one group. Raises ``GroupNotFound``."""
        ...

    async def aclose(self) -> None: ...
