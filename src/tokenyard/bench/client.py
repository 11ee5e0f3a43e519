"""Sending one request of a user action over a shared aiohttp session and recording what the user saw."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from tokenyard.bench.plan import Generation, Retrieval, ToolCall
from tokenyard.bench.records import RequestRecord
from tokenyard.bench.sse import classify_status, iter_events, message_text

ERROR_BODY_LIMIT = 64 * 1024


@dataclass(frozen=True)
class Target:
    """Where requests go: ``base_url`` without ``/v1``; the model name sent; the per-request time limit."""

    base_url: str
    model: str
    stream: bool = True
    request_timeout_s: float = 120.0
    extra_body: Mapping[str, Any] = field(default_factory=dict)

    @property
    def chat_url(self) -> str:
        return f"{self.base_url}/v1/chat/completions"


async def send_generation(session: aiohttp.ClientSession, target: Target, gen: Generation, rec: RequestRecord,
                          headers: Mapping[str, str], clock: Callable[[], float], prompt_prefix: str = "") -> None:
    """Send one chat completion and fill ``rec`` (outcome, status, timings, tokens). Never raises except on
    cancellation; the response is closed (the TCP connection dropped) whenever it was not read to the end, so
    an abandoning user really disconnects."""
    body: dict[str, Any] = {
        "model": target.model,
        "messages": [{"role": "user", "content": prompt_prefix + gen.prompt}],
        "max_tokens": gen.max_tokens,
        "stream": target.stream,
        **target.extra_body,
    }
    if target.stream:
        body["stream_options"] = {"include_usage": True}
    rec.prompt_tokens = gen.prompt_tokens
    loop = asyncio.get_running_loop()
    limit_s = target.request_timeout_s
    abandon_by_time = gen.abandon_after_ms is not None and gen.abandon_after_ms / 1000 < limit_s
    if abandon_by_time and gen.abandon_after_ms is not None:
        limit_s = gen.abandon_after_ms / 1000
    rec.sent_s = clock()
    resp: aiohttp.ClientResponse | None = None
    finished = False
    try:
        async with asyncio.timeout_at(loop.time() + limit_s):
            resp = await session.post(target.chat_url, data=json.dumps(body).encode(),
                                      headers={"Content-Type": "application/json", **headers})
            rec.status = resp.status
            rec.degraded = resp.headers.get("x-tokenyard-degraded") or None
            if resp.status != 200:
                rec.outcome = classify_status(resp.status, await resp.content.read(ERROR_BODY_LIMIT), resp.headers)
                rec.error = f"HTTP {resp.status}"
            elif target.stream:
                finished = await _read_stream(resp, gen, rec, clock)
            else:
                payload = await resp.json(content_type=None)
                now = clock()
                rec.ttft_s = rec.e2e_s = now - rec.intended_s
                usage = payload.get("usage") if isinstance(payload, dict) else None
                rec.completion_tokens = _usage(usage, "completion_tokens") or (1 if message_text(payload) else 0)
                rec.prompt_tokens = _usage(usage, "prompt_tokens") or rec.prompt_tokens
                rec.outcome = "completed"
                finished = True
    except aiohttp.ServerTimeoutError as exc:  # aiohttp's own timeouts are TimeoutErrors too: not the user's
        rec.outcome = "upstream_interrupted" if rec.status == 200 else "error"
        rec.error = f"{type(exc).__name__}: {exc}"[:200]
    except TimeoutError:
        rec.outcome = "client_aborted" if abandon_by_time else "error"
        rec.error = None if abandon_by_time else f"no answer within {target.request_timeout_s:g} s"
    except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError) as exc:
        # The server went away after answering 200: the stream was cut.
        rec.outcome = "upstream_interrupted" if rec.status == 200 else "error"
        rec.error = type(exc).__name__
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        rec.outcome = "upstream_interrupted" if rec.status == 200 else "error"
        rec.error = f"{type(exc).__name__}: {exc}"[:200]
    finally:
        rec.end_s = clock()
        if resp is not None:
            if finished:
                resp.release()
            else:
                resp.close()  # drop the connection: the server must see the disconnect


async def _read_stream(resp: aiohttp.ClientResponse, gen: Generation, rec: RequestRecord,
                       clock: Callable[[], float]) -> bool:
    """Read the SSE stream into ``rec``; True when it ended with ``[DONE]``."""
    last: float | None = None
    chunks = 0
    usage: dict[str, Any] | None = None
    async for event in iter_events(resp.content):
        if event.kind == "done":
            rec.outcome = "completed"
            rec.e2e_s = clock() - rec.intended_s
            rec.completion_tokens = _usage(usage, "completion_tokens") or chunks
            rec.prompt_tokens = _usage(usage, "prompt_tokens") or rec.prompt_tokens
            return True
        if event.kind == "error":
            rec.outcome = "upstream_interrupted"
            rec.error = "error event in stream"
            rec.completion_tokens = chunks
            return False
        if event.usage is not None:
            usage = event.usage
        if not event.content:
            continue  # role-only and usage-only chunks do not count as tokens (vLLM / AIPerf)
        now = clock()
        if last is None:
            rec.ttft_s = now - rec.intended_s
        else:
            rec.itls_s.append(now - last)
        last = now
        chunks += 1
        rec.completion_tokens = chunks
        if gen.abandon_after_tokens is not None and chunks >= gen.abandon_after_tokens:
            rec.outcome = "client_aborted"
            return False
    rec.outcome = "upstream_interrupted"
    rec.error = "stream ended without [DONE]"
    return False


async def call_retrieval(session: aiohttp.ClientSession, step: Retrieval, headers: Mapping[str, str]) -> bool:
    """POST the retrieval query; True when the service answered 2xx in time (else the caller falls back)."""
    url = step.url if step.url.rstrip("/").endswith("/retrieve") else f"{step.url.rstrip('/')}/v1/retrieve"
    return await _post_ok(session, url, {"query": step.query, "top_k": step.top_k}, headers,
                          step.timeout_ms / 1000)


async def call_tool(session: aiohttp.ClientSession, step: ToolCall, headers: Mapping[str, str],
                    timeout_s: float) -> bool:
    url = f"{step.url.rstrip('/')}/v1/tools/{step.tool}"
    return await _post_ok(session, url, {"arguments": step.arguments}, headers, timeout_s)


async def _post_ok(session: aiohttp.ClientSession, url: str, body: dict[str, Any], headers: Mapping[str, str],
                   timeout_s: float) -> bool:
    try:
        async with asyncio.timeout(timeout_s), session.post(url, json=body, headers=dict(headers)) as resp:
            await resp.read()
            return 200 <= resp.status < 300
    except (TimeoutError, aiohttp.ClientError, OSError):
        return False


def _usage(usage: Any, key: str) -> int:
    if isinstance(usage, dict) and isinstance(usage.get(key), int) and not isinstance(usage.get(key), bool):
        return int(usage[key])
    return 0
