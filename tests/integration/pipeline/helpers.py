"""Shared helpers of the pipeline integration tests: a spec against a simulator, polling, reading results."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from tokenyard.pipeline.event import encode_event
from tokenyard.pipeline.eventlog import EventLog
from tokenyard.pipeline.sinks import Result
from tokenyard.pipeline.spec import PipelineSpec, parse_spec

OUT = "results"


def spec_for(log_url: str, sim_url: str, **sections: Any) -> PipelineSpec:
    """A pipeline reading ``events``, templating ``{text}`` into the prompt, writing every outcome to ``results``."""
    doc: dict[str, Any] = {
        "name": "test",
        "log": log_url,
        "source": {"stream": "events", "group": "g"},
        "transforms": [{"template": {"text": "Summarize: {text}"}}],
        "inference": {"model": "sim-fast", "upstream": sim_url + "/v1", "max_tokens": 8},
        "sinks": [{"stream": {"stream": OUT}, "outcomes": ["completed", "expired", "aborted", "superseded",
                                                            "filtered", "not_valuable", "dead_lettered"]}],
        "delivery": {"max_attempts": 2, "claim_idle_ms": 300},
        "worker": {"max_inflight": 32, "block_ms": 50, "claim_every_ms": 100},
    }
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(doc.get(key), dict):
            doc[key] = {**doc[key], **value}
        else:
            doc[key] = value
    return parse_spec(doc)


async def produce(log: EventLog, n: int, stream: str = "events", prefix: str = "e", **kw: Any) -> list[str]:
    return [await log.append(stream, encode_event({"text": f"item {i}"}, event_id=f"{prefix}{i}", **kw))
            for i in range(n)]


async def results(log: EventLog, stream: str = OUT) -> list[Result]:
    return [Result.from_fields(e.fields) for e in await log.read_range(stream)]


async def wait_until(check: Callable[[], Awaitable[bool]], timeout: float = 20.0, every: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(every)
