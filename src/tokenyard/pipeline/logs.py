"""What the pipeline adds on top of the ``EventLog`` seam (``tokenyard.pipeline.eventlog``, used as it is):

- ``lag``: entries a group has not finished (never delivered + pending), 0 before the group exists;
- ``tail``: follow a stream without a consumer group (every reader sees every entry: the control stream), by
  polling exclusive ranges, since the seam has no group-less blocking read;
- ``next_after``: the exclusive range bound after an id, for paging.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from tokenyard.pipeline.eventlog import Entry, EventLog, GroupNotFound

TAIL_POLL_S = 0.02


async def lag(log: EventLog, stream: str, group: str) -> int:
    try:
        info = await log.group_info(stream, group)
    except GroupNotFound:
        return 0
    return info.lag + info.pending


async def tail(log: EventLog, stream: str, after: str = "0-0", batch: int = 500,
               poll_s: float = TAIL_POLL_S) -> AsyncIterator[list[Entry]]:
    """Yield every entry after ``after`` in batches; an empty batch means "caught up" (then polls again)."""
    while True:
        entries = await log.read_range(stream, f"({after}", "+", count=batch)
        if entries:
            after = entries[-1].id
        yield entries
        if len(entries) < batch:
            await asyncio.sleep(poll_s)


def id_rank(entry_id: str) -> tuple[int, int]:
    """``"12-3"`` -> ``(12, 3)``: the order of ids in a stream."""
    head, _, tail_ = entry_id.partition("-")
    return int(head), int(tail_ or 0)
