"""Batched acks and lineage writes: one background task turns many finished events into a few log calls.

A handler hands its finished event over (``submit``) once its result is in the sinks; the finisher appends the
lineage records and acks the entries in one ``ack`` call per batch. A worker that dies between the sink write
and the ack leaves the entry pending: it is claimed and redelivered, and the idempotent sinks drop the repeat.
This keeps the log's connection count flat however many events are in flight.
"""

from __future__ import annotations

import asyncio
import logging

from tokenyard.pipeline.eventlog import EventLog

log = logging.getLogger("tokenyard.pipeline")
MAX_BATCH = 500


class Finisher:
    def __init__(self, log_: EventLog, stream: str, group: str, lineage_stream: str | None) -> None:
        self.log = log_
        self.stream = stream
        self.group = group
        self.lineage_stream = lineage_stream
        self._queue: asyncio.Queue[tuple[str, dict[str, str] | None]] = asyncio.Queue()
        self.failed_batches = 0
        self.finishing: set[str] = set()
        self._stopping = False  # handed over, not yet acked: not to be claimed again meanwhile

    def submit(self, entry_id: str, lineage: dict[str, str] | None) -> None:
        self.finishing.add(entry_id)
        self._queue.put_nowait((entry_id, lineage))

    async def run(self) -> None:
        # A stop flag besides cancellation: on Python 3.11 a cancel that races a log call's own timeout can be
        # turned into that timeout (and handled as a log error), so a loop must also look at the flag.
        while not self._stopping:
            first = await self._queue.get()
            if first[0]:
                await self._flush([first, *self._drain()])

    def stop(self) -> None:
        self._stopping = True
        self._queue.put_nowait(("", None))  # wake the loop

    async def close(self, timeout_s: float = 5.0) -> None:
        """Flush what is queued (results already in the sinks) before the worker goes."""
        batch = [item for item in self._drain(limit=None) if item[0]]
        if batch:
            try:
                await asyncio.wait_for(self._flush(batch), timeout_s)
            except TimeoutError:
                log.warning("could not ack %d finished events before stopping; they will be redelivered",
                            len(batch))

    def _drain(self, limit: int | None = MAX_BATCH - 1) -> list[tuple[str, dict[str, str] | None]]:
        out: list[tuple[str, dict[str, str] | None]] = []
        while not self._queue.empty() and (limit is None or len(out) < limit):
            item = self._queue.get_nowait()
            if item[0]:
                out.append(item)
        return out

    async def _flush(self, batch: list[tuple[str, dict[str, str] | None]]) -> None:
        ids = [entry_id for entry_id, _ in batch]
        try:
            await self.log.ack(self.stream, self.group, ids)  # first: the sooner acked, the fewer redeliveries
        except Exception as exc:  # the log is unavailable: the entries stay pending and are redelivered
            self.failed_batches += 1
            log.warning("acking %d finished events failed (they will be redelivered): %s", len(batch), exc)
        finally:
            self.finishing.difference_update(ids)
        try:
            if self.lineage_stream is not None:
                await self.log.append_many(self.lineage_stream, [r for _, r in batch if r is not None])
        except Exception as exc:
            log.warning("writing lineage of %d events failed: %s", len(batch), exc)
