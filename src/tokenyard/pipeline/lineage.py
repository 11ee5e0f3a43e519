"""Lineage: event -> inference request id -> result, one record per finished attempt, on a stream beside the
source (``<source>:lineage:<pipeline>``). An event processed twice (its worker died after the sink write, before
the ack) shows both records; only one result reached the sinks. ``find`` scans the stream (an operator's lookup,
not a hot path).
"""

from __future__ import annotations

from tokenyard.pipeline.eventlog import EventLog
from tokenyard.pipeline.sinks import Result

FIELDS = ("event_id", "entry_id", "status", "request_id", "backend", "attempts", "worker", "finished_ms",
          "completion_tokens", "error")
PAGE = 1000


class Lineage:
    def __init__(self, log: EventLog, stream: str) -> None:
        self.log = log
        self.stream = stream

    @staticmethod
    def record(result: Result, new_result: bool) -> dict[str, str]:
        """The lineage entry of one finished attempt (appended by the worker's ``Finisher``)."""
        fields = result.to_fields()
        record = {k: fields[k] for k in FIELDS}
        record["result"] = "written" if new_result else "duplicate"
        return record

    async def find(self, event_id: str) -> list[dict[str, str]]:
        found: list[dict[str, str]] = []
        start = "-"
        while True:
            entries = await self.log.read_range(self.stream, start, "+", count=PAGE)
            found.extend(dict(e.fields, lineage_id=e.id) for e in entries if e.fields.get("event_id") == event_id)
            if len(entries) < PAGE:
                return found
            start = f"({entries[-1].id}"
