"""The pipeline's unit of work: an ``Event`` read from a log entry, and the outcomes it can end with.

On the wire (a stream entry) an event is flat string fields: ``id`` (the producer's event id, the idempotency key
of every sink; the log entry id when absent), ``key`` (supersession and per-key fan-out), ``tenant``,
``created_ms`` (unix ms; the entry id's time when absent), ``deadline_ms`` (unix ms, absolute; or ``ttl_ms``
relative to ``created_ms``) and ``data`` (a JSON object: the fields templates and filters see).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import msgspec

# Terminal outcomes of one event (metric label values and the ``status`` of result records).
COMPLETED = "completed"
FILTERED = "filtered"
EXPIRED = "expired"
ABORTED = "aborted"
SUPERSEDED = "superseded"
NOT_VALUABLE = "not_valuable"
DEAD_LETTERED = "dead_lettered"
OUTCOMES: tuple[str, ...] = (COMPLETED, FILTERED, EXPIRED, ABORTED, SUPERSEDED, NOT_VALUABLE, DEAD_LETTERED)
_decode_json = msgspec.json.Decoder().decode


class EventInvalid(ValueError):
    """The entry cannot be read as an event (bad JSON in ``data``, a non-numeric time); it is dead-lettered."""


@dataclass
class Event:
    """One event. ``entry_id`` is where it sits in the source log; ``deliveries`` how often it was handed out."""

    id: str
    entry_id: str
    data: dict[str, Any]
    key: str = ""
    tenant: str = "default"
    created_ms: float = 0.0
    deadline_ms: float | None = None
    deliveries: int = 1
    vars: dict[str, Any] = field(default_factory=dict)  # what transforms add (prompt, documents, ...)

    def fields(self) -> dict[str, Any]:
        """What templates, filters and predicates see: the data, then transform outputs, then the envelope."""
        merged = dict(self.data)
        merged.update(self.vars)
        merged.setdefault("event_id", self.id)
        merged.setdefault("key", self.key)
        merged.setdefault("tenant", self.tenant)
        return merged

    def age_ms(self, now_ms: float) -> float:
        return max(0.0, now_ms - self.created_ms)

    def expired(self, now_ms: float) -> bool:
        return self.deadline_ms is not None and now_ms >= self.deadline_ms


def now_ms() -> float:
    return time.time() * 1000.0


def encode_event(data: dict[str, Any], *, event_id: str | None = None, key: str = "", tenant: str = "",
                 created_ms: float | None = None, ttl_ms: float | None = None,
                 deadline_ms: float | None = None) -> dict[str, str]:
    """The stream fields of a new event (what producers and the HTTP ingest append)."""
    created = now_ms() if created_ms is None else created_ms
    out = {"data": json.dumps(data, separators=(",", ":")), "created_ms": f"{created:.3f}"}
    if event_id:
        out["id"] = event_id
    if key:
        out["key"] = key
    if tenant:
        out["tenant"] = tenant
    if deadline_ms is None and ttl_ms is not None:
        deadline_ms = created + ttl_ms
    if deadline_ms is not None:
        out["deadline_ms"] = f"{deadline_ms:.3f}"
    return out


def _load_data(raw: str) -> Any:
    """``json.loads``, by msgspec where it can (strict JSON gives the same values, faster); what only Python's
    parser takes (NaN, Infinity, lone surrogates, huge numbers) or rejects keeps its answer."""
    try:
        return _decode_json(raw)
    except msgspec.DecodeError:
        return json.loads(raw)


def _appended_ms(entry_id: str) -> float:
    """When the log took the entry (its id's ms part): the age of an event that carries no ``created_ms``. Not
    the time it is read: a TTL would then restart at every delivery and a backlog's stale events would run."""
    head, _, _ = entry_id.partition("-")
    return float(head) if head.isdigit() else now_ms()


def decode_event(entry_id: str, fields: dict[str, str], deliveries: int = 1,
                 default_ttl_ms: float | None = None) -> Event:
    """Read an entry; ``default_ttl_ms`` (the pipeline's TTL) applies when the event carries no deadline."""
    try:
        raw = fields.get("data", "{}")
        data = _load_data(raw) if raw else {}
        if not isinstance(data, dict):
            raise EventInvalid("'data' must be a JSON object")
        created = float(fields["created_ms"]) if "created_ms" in fields else _appended_ms(entry_id)
        deadline: float | None = None
        if "deadline_ms" in fields:
            deadline = float(fields["deadline_ms"])
        elif "ttl_ms" in fields:
            deadline = created + float(fields["ttl_ms"])
        elif default_ttl_ms is not None:
            deadline = created + default_ttl_ms
    except (ValueError, TypeError) as exc:
        raise EventInvalid(f"entry {entry_id} is not a valid event: {exc}") from exc
    return Event(id=fields.get("id") or entry_id, entry_id=entry_id, data=data, key=fields.get("key", ""),
                 tenant=fields.get("tenant") or "default", created_ms=created, deadline_ms=deadline,
                 deliveries=deliveries)
