"""Replay: run a range of the source stream's entries through the graph again into a NEW sink.

Replay ignores consumer groups, acks, deadlines and control history (it recomputes results on purpose); it keeps
filters, templates, enrichment and the traffic core. Results are keyed by event id like any sink, so a replay
that is interrupted and run again writes each result once.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from tokenyard.pipeline import event as ev
from tokenyard.pipeline.event import EventInvalid, decode_event, now_ms
from tokenyard.pipeline.eventlog import Entry, EventLog
from tokenyard.pipeline.inference import InferenceStep
from tokenyard.pipeline.sinks import Result, Sink
from tokenyard.pipeline.transforms import Transform

PAGE = 500


@dataclass
class ReplayReport:
    read: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)


async def replay(log: EventLog, stream: str, start: str, end: str, transforms: list[Transform],
                 inference: InferenceStep, sinks: list[Sink], *, prompt_field: str = "prompt",
                 concurrency: int = 32, worker: str = "replay") -> ReplayReport:
    report = ReplayReport()
    slots = asyncio.Semaphore(concurrency)

    async def one(entry: Entry) -> None:
        async with slots:
            try:
                event = decode_event(entry.id, entry.fields)
                event.deadline_ms = None
                status = ev.COMPLETED
                for transform in transforms:
                    if not await transform.apply(event):
                        status = ev.FILTERED
                        break
                progress = inference.new_progress()
                output = ""
                if status == ev.COMPLETED:
                    prompt = str(event.fields().get(prompt_field, ""))
                    output = await inference.run(event, prompt, None, progress)
                result = Result(event_id=event.id, status=status, entry_id=entry.id, key=event.key,
                                tenant=event.tenant, request_id=progress.request_id if progress.backend else "",
                                output=output, prompt_tokens=progress.prompt_tokens,
                                completion_tokens=progress.completion_tokens or progress.tokens,
                                backend=progress.backend, worker=worker, finished_ms=now_ms())
                for sink in sinks:
                    if status in sink.outcomes:
                        await sink.write(result)
                report.outcomes[status] = report.outcomes.get(status, 0) + 1
            except (EventInvalid, Exception) as exc:
                report.failed.append(f"{entry.id}: {exc}")

    cursor = start
    while True:
        entries = await log.read_range(stream, cursor, end, count=PAGE)
        report.read += len(entries)
        await asyncio.gather(*(one(e) for e in entries))
        if len(entries) < PAGE:
            return report
        cursor = f"({entries[-1].id}"
