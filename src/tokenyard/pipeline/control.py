"""Control events: abort (by event id, or by key for every event of the key created up to now), pause, resume.

They are entries on the pipeline's control stream; every worker tails the whole stream (no consumer group), so a
control reaches all workers, and a worker that starts later replays the history (pause state, aborts).
"""

from __future__ import annotations

from typing import Any

from tokenyard.pipeline.event import now_ms
from tokenyard.pipeline.eventlog import EventLog
from tokenyard.pipeline.spec import PipelineSpec


def control_fields(body: dict[str, Any]) -> dict[str, str]:
    """Validate a control request; the stream fields to append (``at_ms`` stamps when it was issued)."""
    action = body.get("action")
    if action not in ("abort", "pause", "resume"):
        raise ValueError("'action' must be one of abort, pause, resume")
    fields = {"action": str(action), "at_ms": f"{now_ms():.3f}"}
    if action == "abort":
        event_id, key = body.get("event_id"), body.get("key")
        if not (isinstance(event_id, str) and event_id) and not (isinstance(key, str) and key):
            raise ValueError("abort needs a non-empty 'event_id' or 'key'")
        if isinstance(event_id, str) and event_id:
            fields["event_id"] = event_id
        else:
            fields["key"] = str(key)
    return fields


async def send_control(log: EventLog, spec: PipelineSpec, **body: Any) -> str:
    """Append a control event, e.g. ``await send_control(log, spec, action="abort", key="user-7")``."""
    return await log.append(spec.control_stream, control_fields(body))
