"""Lineage: one record per event, event -> inference request id -> result, on a stream beside the source.

The record is appended once per event id (``append_once``), so a redelivered event does not add a second one;
``find`` scans the lineage stream (an operator's lookup, not a hot path).
"""

from __future__ import annotations

from tokenyard.pipeline.sinks import Result
from tokenyard.pipeline.streams import StreamLog

FIELDS = ("event_id", "entry_id", "status", "request_id", "backend", "attempts", "worker", "finished_ms",
          "completion_tokens", "error")


class Lineage:
    def __init__(self, log: StreamLog, stream: str) -> None:
        self.log = log
        self.stream = stream

    async def record(self, result: Result) -> None:
        fields = result.to_fields()
        await self.log.append_once(self.stream, result.event_id, {k: fields[k] for k in FIELDS})

    async def find(self, event_id: str, batch: int = 1000) -> dict[str, str] | None:
        start = "-"
        while True:
            entries = await self.log.read_range(self.stream, start, "+", batch)
            for entry in entries:
                if entry.fields.get("event_id") == event_id:
                    return dict(entry.fields, lineage_id=entry.id)
            if len(entries) < batch:
                return None
            last = entries[-1].id
            head, _, tail = last.partition("-")
            start = f"{head}-{int(tail or 0) + 1}"
