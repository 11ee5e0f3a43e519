"""Helpers for the traffic-layer integration tests: a gateway config builder, a recording upstream, polling."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import msgspec
from aiohttp import web

from tests.integration.loopback_app import serving
from tokenyard.config import GatewayConfig, parse_config
from tokenyard.gateway.app import RunningGateway
from tokenyard.sim.testing import RunningSim

ADMIN_KEY = "admin-secret"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


def traffic_config(urls: list[str], **sections: Any) -> GatewayConfig:
    """One pass-through pool over ``urls`` (API bases), an admin key, scraping off, and ``sections``."""
    document: dict[str, Any] = {
        "listen": {"host": "127.0.0.1", "port": 0},
        "admin": {"key": ADMIN_KEY},
        "models": {"*": {"endpoints": [{"url": url} for url in urls]}},
        "access_log": {"enabled": False},
    }
    admission = {"scrape": False, **sections.pop("admission", {})}
    document["admission"] = admission
    document.update(sections)
    return parse_config(document, env={})


def fixed_limit(n: int, **more: Any) -> dict[str, Any]:
    """Admission settings with every endpoint's concurrency limit held at ``n``."""
    return {"initial_limit": n, "min_limit": n, "max_limit": n, **more}


def sim_requests(stats: dict[str, Any]) -> int:
    """Requests the simulator has seen (finished, aborted, refused, running or waiting)."""
    return int(stats["completed_requests"] + stats["aborted_requests"] + stats["rejected_requests"]
               + stats["running"] + stats["waiting"])


async def until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll ``predicate`` every 10 ms; AssertionError after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not predicate():
        if loop.time() > end:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


def inflight(gw: RunningGateway) -> int:
    """Requests admitted and already bound to an endpoint (what the instant saturation signal counts)."""
    admission = gw.gateway.traffic.admission
    assert admission is not None
    return int(sum(e["inflight"] for p in admission.snapshot()["pools"].values() for e in p["endpoints"].values()))


def chat(model: str, max_tokens: int = 8, stream: bool = False, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hello"}], "max_tokens": max_tokens,
            "stream": stream, **extra}


class Recorder:
    """A tiny OpenAI-compatible upstream that records each request's headers and JSON body and answers a
    fixed non-streaming chat completion (usage: 5 prompt + 10 completion tokens) after ``delay_s``."""

    def __init__(self, model: str = "rec", delay_s: float = 0.0) -> None:
        self.model = model
        self.delay_s = delay_s
        self.seen: list[tuple[dict[str, str], dict[str, Any]]] = []
        self.base_url = ""

    async def _chat(self, request: web.Request) -> web.Response:
        body = msgspec.json.decode(await request.read())
        self.seen.append((dict(request.headers), body))
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        answer = {"id": "cmpl-1", "object": "chat.completion", "created": 0, "model": body.get("model"),
                  "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"},
                               "finish_reason": "stop"}],
                  "usage": {"prompt_tokens": 5, "completion_tokens": 10, "total_tokens": 15}}
        return web.json_response(answer)

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": self.model, "object": "model"}]})

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Recorder]:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/health", self._health)
        async with serving(app) as self.base_url:
            yield self


def sim_url(sim: RunningSim) -> str:
    return sim.base_url + "/v1"
