"""Helpers for resumable-stream tests: a gateway with a resumable class in front of a simulator, an SSE client
that remembers event ids, drops the connection on purpose and resumes with ``Last-Event-ID``."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from tests.integration.gateway.helpers import config_for
from tokenyard.config import GatewayConfig
from tokenyard.sim.testing import RunningSim

KEY_A = "sk-tenant-a"
KEY_B = "sk-tenant-b"


def resume_config(sims: list[RunningSim], window_ms: int = 5_000, *, buffer_events: int = 4096,
                  heartbeat_s: float = 15.0, with_keys: bool = True, **sections: Any) -> GatewayConfig:
    """Class ``live`` (resumable, ``window_ms``) and class ``plain`` (no window); tenant a uses ``live``."""
    document: dict[str, Any] = {
        "classes": {"live": {"priority": 0, "resume_window_ms": window_ms}, "plain": {"priority": 1}},
        "default_class": "live",
        "streams": {"heartbeat_s": heartbeat_s, "resume_buffer_events": buffer_events},
    }
    if with_keys:
        document["tenants"] = {"a": {"class": "live"}, "b": {"class": "live"}, "p": {"class": "plain"}}
        document["keys"] = [{"key": KEY_A, "tenant": "a"}, {"key": KEY_B, "tenant": "b"},
                            {"key": "sk-plain", "tenant": "p"}]
    document.update(sections)
    return config_for(sims, **document)


def body(max_tokens: int, text: str = "tell me a story") -> dict[str, Any]:
    return {"model": "sim-fast", "messages": [{"role": "user", "content": text}], "max_tokens": max_tokens,
            "stream": True}


def auth(key: str = KEY_A) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@dataclass
class Received:
    """What an SSE client saw: ``(id, data)`` per event, the request id, and how the stream ended."""

    request_id: str = ""
    events: list[tuple[int, str]] = field(default_factory=list)
    event_names: list[str] = field(default_factory=list)
    comments: int = 0
    done: bool = False
    error: dict[str, Any] | None = None

    @property
    def last_id(self) -> int:
        return self.events[-1][0] if self.events else 0

    def text(self) -> str:
        """The concatenated content of the answer's chunks."""
        out = []
        for _, data in self.events:
            if data.startswith("{"):
                decoded = json.loads(data)
                for choice in decoded.get("choices", ()):
                    out.append((choice.get("delta") or {}).get("content") or choice.get("text") or "")
        return "".join(out)

    def content_events(self) -> int:
        return sum(1 for _, data in self.events if '"content":"' in data and '"content":""' not in data)


async def read_sse(resp: aiohttp.ClientResponse, into: Received, leave_after_content: int | None = None) -> None:
    """Read events into ``into``; with ``leave_after_content``, stop (the caller drops the connection) after that
    many content events."""
    current_id = -1
    data = ""
    name = ""
    async for raw in resp.content:
        line = raw.decode().rstrip("\n")
        if line.startswith(":"):
            into.comments += 1
        elif line.startswith("id: "):
            current_id = int(line[4:])
        elif line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            data = line[6:]
        elif line == "" and (data or name):
            into.events.append((current_id, data))
            into.event_names.append(name)
            if data == "[DONE]":
                into.done = True
            if name == "error":
                into.error = json.loads(data)["error"]
            data, name = "", ""
            if leave_after_content is not None and into.content_events() >= leave_after_content:
                return


async def start_and_leave(session: aiohttp.ClientSession, base_url: str, request: dict[str, Any],
                          leave_after_content: int, headers: dict[str, str] | None = None) -> Received:
    """Start a stream, read ``leave_after_content`` content events (0: none, only the head), drop the connection."""
    got = Received()
    resp = await session.post(base_url + "/v1/chat/completions", json=request, headers=headers)
    try:
        assert resp.status == 200, await resp.text()
        got.request_id = resp.headers["x-request-id"]
        if leave_after_content:
            await read_sse(resp, got, leave_after_content)
    finally:
        resp.close()
    return got


async def resume(session: aiohttp.ClientSession, base_url: str, got: Received,
                 headers: dict[str, str] | None = None) -> int:
    """Resume ``got``'s stream after its last event id, appending to ``got``; returns the HTTP status."""
    request_headers = {"Last-Event-ID": str(got.last_id), **(headers or {})}
    async with session.get(f"{base_url}/v1/streams/{got.request_id}", headers=request_headers) as resp:
        if resp.status != 200:
            body_ = await resp.json()
            got.error = body_["error"]
            return resp.status
        await read_sse(resp, got)
        return 200


async def wait_until(predicate: Any, timeout_s: float = 20.0) -> None:
    """Poll an async predicate until it is true (generous: the shared test machine is slow)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


def metric_value(text: str, name: str, **labels: str) -> float:
    """The value of one sample of a Prometheus text exposition (0 when absent)."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0
