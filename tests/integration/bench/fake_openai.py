"""A small OpenAI-compatible streaming server on loopback for the bench tests (the simulator stand-in).

It streams one word per ``itl_s`` after ``ttft_s``, counts what it saw (requests, headers, finished streams and
client disconnects) and can be told to shed (429), cut streams (error event or no [DONE]) or fail retrieval.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class FakeState:
    ttft_s: float = 0.01
    itl_s: float = 0.005
    shed_every: int = 0  # every n-th chat request gets 429 shed
    rate_limit_every: int = 0  # every n-th chat request gets a plain 429
    cut_after: int | None = None  # stop the stream after k tokens...
    cut_with_error_event: bool = True  # ...with an SSE error event (else: just end, no [DONE])
    retrieval_fails: bool = False
    degraded_header: str | None = None  # sent as x-tokenyard-degraded on every answer
    chat_requests: int = 0
    completed_streams: int = 0
    disconnects: int = 0
    retrievals: int = 0
    tool_calls: int = 0
    headers: list[dict[str, str]] = field(default_factory=list)


@dataclass
class FakeServer:
    base_url: str
    state: FakeState


def _chunk(content: str | None, usage: dict[str, int] | None = None) -> bytes:
    choices: list[dict[str, Any]] = [] if content is None else [{"index": 0, "delta": {"content": content}}]
    payload: dict[str, Any] = {"id": "x", "object": "chat.completion.chunk", "choices": choices}
    if usage is not None:
        payload["usage"] = usage
    return f"data: {json.dumps(payload)}\n\n".encode()


def make_app(state: FakeState) -> web.Application:
    async def models(_: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "fake-model", "object": "model"}]})

    async def chat(request: web.Request) -> web.StreamResponse:
        state.chat_requests += 1
        state.headers.append(dict(request.headers))
        body = await request.json()
        n = state.chat_requests
        if state.shed_every and n % state.shed_every == 0:
            return web.json_response({"error": {"message": "overloaded", "type": "overloaded", "code": "shed"}},
                                     status=429, headers={"Retry-After": "1"})
        if state.rate_limit_every and n % state.rate_limit_every == 0:
            return web.json_response({"error": {"message": "slow down", "type": "requests",
                                                "code": "rate_limit_exceeded"}}, status=429)
        max_tokens = int(body.get("max_tokens") or 16)
        if not body.get("stream"):
            await asyncio.sleep(state.ttft_s + state.itl_s * max_tokens)
            return web.json_response({"choices": [{"index": 0, "message": {"role": "assistant",
                                                                           "content": "w " * max_tokens}}],
                                      "usage": {"prompt_tokens": 10, "completion_tokens": max_tokens}})
        headers = {"Content-Type": "text/event-stream"}
        if state.degraded_header:
            headers["x-tokenyard-degraded"] = state.degraded_header
        resp = web.StreamResponse(headers=headers)
        await resp.prepare(request)
        try:
            # An empty role chunk first, as vLLM sends: it must not count as the first token.
            await resp.write(b'data: {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}\n\n')
            await asyncio.sleep(state.ttft_s)
            for i in range(max_tokens):
                if state.cut_after is not None and i >= state.cut_after:
                    if state.cut_with_error_event:
                        await resp.write(b'event: error\ndata: {"error": {"message": "upstream died"}}\n\n')
                    return resp
                if i:
                    await asyncio.sleep(state.itl_s)
                await resp.write(_chunk(f"w{i} "))
            await resp.write(_chunk(None, {"prompt_tokens": 10, "completion_tokens": max_tokens}))
            await resp.write(b"data: [DONE]\n\n")
            state.completed_streams += 1
        except (ConnectionResetError, asyncio.CancelledError):
            state.disconnects += 1
            raise
        return resp

    async def retrieve(_: web.Request) -> web.Response:
        state.retrievals += 1
        if state.retrieval_fails:
            return web.json_response({"error": {"message": "down", "type": "server_error", "code": None}},
                                     status=503)
        return web.json_response({"documents": [{"text": "doc"}]})

    async def tool(_: web.Request) -> web.Response:
        state.tool_calls += 1
        return web.json_response({"result": "ok"})

    app = web.Application()
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_post("/v1/retrieve", retrieve)
    app.router.add_post("/v1/tools/{name}", tool)
    return app


@asynccontextmanager
async def running_fake(state: FakeState | None = None) -> AsyncIterator[FakeServer]:
    state = state or FakeState()
    runner = web.AppRunner(make_app(state), handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield FakeServer(base_url=f"http://127.0.0.1:{port}", state=state)
    finally:
        await runner.cleanup()
