"""Sinks: where results go. Every sink is idempotent by event id, so at-least-once delivery (a result written,
then the worker dies before its ack, then the event is redelivered) still leaves exactly one result per event.

- ``stream``: a stream on Redis or on the embedded SQLite log, deduplicated by event id (``stream_sinks``).
- ``jsonl``: one JSON object per line; an exclusive ``flock`` and a rescan of lines other writers appended make it
  safe for several worker processes on one machine.
- ``webhook``: POST with ``Idempotency-Key: <event id>`` (the receiver deduplicates, as Stripe-style APIs do).
"""

from __future__ import annotations

import asyncio
import fcntl
import functools
import itertools
import json
import os
from dataclasses import asdict, dataclass, fields
from typing import Any, Protocol

import aiohttp

from tokenyard.files import unwritable
from tokenyard.pipeline.eventlog import EventLog
from tokenyard.pipeline.spec import JsonlSinkSpec, SinkSpec, WebhookSinkSpec
from tokenyard.pipeline.transforms import TransientError


@dataclass
class Result:
    """The one record an event yields (``status`` is its terminal outcome)."""

    event_id: str
    status: str
    entry_id: str = ""
    key: str = ""
    tenant: str = ""
    request_id: str = ""
    output: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    backend: str = ""
    attempts: int = 1
    worker: str = ""
    finished_ms: float = 0.0
    error: str = ""

    @functools.cached_property
    def _strings(self) -> dict[str, str]:
        # Not dataclasses.asdict: it deep-copies every field, a measurable cost per event on the hot path. Built
        # once per result (the sink record and the lineage record both use it); results are not changed later.
        return {k: str(getattr(self, k)) for k in _RESULT_FIELDS}

    def to_fields(self) -> dict[str, str]:
        return dict(self._strings)

    def flat_fields(self) -> list[str]:
        """``to_fields`` as one flat ``[name, value, name, value, ...]`` list (a stream entry's argument list)."""
        return list(itertools.chain.from_iterable(self._strings.items()))

    @staticmethod
    def from_fields(fields: dict[str, str]) -> Result:
        ints = ("prompt_tokens", "completion_tokens", "attempts")
        kw: dict[str, Any] = {k: (int(v) if k in ints else float(v) if k == "finished_ms" else v)
                              for k, v in fields.items() if k in Result.__dataclass_fields__}
        return Result(**kw)


_RESULT_FIELDS = tuple(f.name for f in fields(Result))


class Sink(Protocol):
    outcomes: frozenset[str]

    async def write(self, result: Result) -> bool:
        """Write unless this event's result is already there; True when it was new."""
        ...

    async def close(self) -> None: ...


class JsonlSink:
    def __init__(self, spec: JsonlSinkSpec, outcomes: frozenset[str]) -> None:
        self.path = spec.path
        self.outcomes = outcomes
        self._seen: set[str] = set()
        self._offset = 0
        self._lock = asyncio.Lock()

    def _write_locked(self, result: Result) -> bool:
        with open(self.path, "a+b") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                fh.seek(self._offset)
                for line in fh:  # lines other writers (processes) appended since we last looked
                    if line.endswith(b"\n"):
                        self._offset += len(line)
                        try:
                            self._seen.add(str(json.loads(line)["event_id"]))
                        except (ValueError, KeyError, TypeError):
                            continue
                if result.event_id in self._seen:
                    return False
                end = fh.seek(0, os.SEEK_END)
                record = json.dumps(asdict(result), separators=(",", ":")).encode() + b"\n"
                if end and os.pread(fh.fileno(), 1, end - 1) != b"\n":
                    # A writer died mid-line: end that line first, or this record would be glued to it (lost)
                    record = b"\n" + record
                fh.write(record)
                fh.flush()
                os.fsync(fh.fileno())
                self._offset = fh.tell()
                self._seen.add(result.event_id)
                return True
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    async def write(self, result: Result) -> bool:
        async with self._lock:
            return await asyncio.to_thread(self._write_locked, result)

    async def close(self) -> None:
        return None


class WebhookSink:
    def __init__(self, spec: WebhookSinkSpec, session: aiohttp.ClientSession, outcomes: frozenset[str]) -> None:
        self.spec = spec
        self.session = session
        self.outcomes = outcomes

    async def write(self, result: Result) -> bool:
        try:
            async with self.session.post(self.spec.url, json=asdict(result),
                                         headers={"Idempotency-Key": result.event_id},
                                         timeout=aiohttp.ClientTimeout(total=self.spec.timeout_ms / 1000)) as resp:
                if resp.status >= 300:
                    raise TransientError(f"webhook answered {resp.status}")
                return resp.status != 208  # 208 Already Reported: a receiver that says it had it
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TransientError(f"webhook failed: {exc}") from exc

    async def close(self) -> None:
        return None


def jsonl_path_problem(path: str) -> str | None:
    """Why a JSONL sink could not write ``path`` (None when it can), checked before any event is processed: a sink
    that fails every write costs each event its inference ``max_attempts`` times before it is dead-lettered."""
    problem = unwritable(path)
    return None if problem is None else f"cannot write {problem}"


def build_sinks(specs: tuple[SinkSpec, ...], log_url: str, log: EventLog,
                session: aiohttp.ClientSession) -> list[Sink]:
    """The sinks of the spec; a stream sink without its own ``log`` writes to the pipeline's log ``log``."""
    from tokenyard.pipeline.stream_sinks import EmbeddedStreamSink, RedisStreamSink, sqlite_path

    out: list[Sink] = []
    for spec in specs:
        outcomes = frozenset(spec.outcomes)
        if spec.stream is not None:
            url = spec.stream.log or log_url
            if url.startswith("sqlite:"):
                if url != log_url:
                    raise ValueError("an embedded stream sink must use the pipeline's own log")
                lock = sqlite_path(url).with_name(sqlite_path(url).name + ".sink.lock")
                out.append(EmbeddedStreamSink(log, lock, spec.stream.stream, outcomes))
            else:
                out.append(RedisStreamSink(url, spec.stream.stream, outcomes))
        elif spec.jsonl is not None:
            out.append(JsonlSink(spec.jsonl, outcomes))
        elif spec.webhook is not None:
            out.append(WebhookSink(spec.webhook, session, outcomes))
    return out
