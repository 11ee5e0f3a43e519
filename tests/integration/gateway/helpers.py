"""Helpers for gateway integration tests: a gateway in front of in-process simulators, raw SSE clients."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp

from tokenyard.config import GatewayConfig, parse_config
from tokenyard.gateway.app import RunningGateway, running_gateway
from tokenyard.sim.testing import RunningSim


def config_for(sims: list[RunningSim], log_path: Path | None = None, **sections: Any) -> GatewayConfig:
    """One pass-through pool over ``sims``; the access log goes to ``log_path`` (or is off)."""
    document: dict[str, Any] = {
        "listen": {"host": "127.0.0.1", "port": 0},
        "models": {"*": {"endpoints": [{"url": sim.base_url + "/v1"} for sim in sims]}},
        "access_log": {"enabled": log_path is not None, "path": str(log_path or "stdout")},
    }
    document.update(sections)
    return parse_config(document, env={})


@asynccontextmanager
async def gateway_for(sims: list[RunningSim], log_path: Path | None = None, **sections: Any
                      ) -> AsyncIterator[RunningGateway]:
    async with running_gateway(config_for(sims, log_path, **sections)) as gw:
        yield gw


def chat_body(model: str, max_tokens: int, stream: bool, text: str = "hello") -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}], "max_tokens": max_tokens,
            "stream": stream}


async def stream_then_leave(session: aiohttp.ClientSession, url: str, body: dict[str, Any], leave_after: int,
                            headers: dict[str, str] | None = None) -> int:
    """Read a stream until ``leave_after`` content events arrived, then drop the connection; returns the count."""
    seen = 0
    resp = await session.post(url + "/v1/chat/completions", json=body, headers=headers)
    try:
        async for line in resp.content:
            if line.startswith(b"data: ") and b'"content":"' in line and b'"content":""' not in line:
                seen += 1
                if seen >= leave_after:
                    break
    finally:
        resp.close()  # closes the connection: the gateway sees the client leave
    return seen


async def leave_after(session: aiohttp.ClientSession, url: str, body: dict[str, Any], seconds: float) -> None:
    """Send a request and drop the connection after ``seconds`` without reading anything."""
    task = asyncio.create_task(session.post(url + "/v1/chat/completions", json=body))
    await asyncio.sleep(seconds)
    task.cancel()
    try:
        resp = await task
    except asyncio.CancelledError:
        return
    resp.close()


async def wait_until_idle(sim: RunningSim, timeout: float = 10.0) -> dict[str, Any]:
    """Poll ``/sim/stats`` until nothing runs or waits; returns the last stats."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while True:
        stats = await sim.stats()
        if (stats["running"] == 0 and stats["waiting"] == 0) or loop.time() > end:
            return stats
        await asyncio.sleep(0.05)


def metric_value(gw: RunningGateway, name: str, labels: dict[str, str] | None = None) -> float:
    """A sample's value from the gateway's own registry (0 when absent)."""
    value = gw.gateway.metrics.registry.get_sample_value(name, labels or {})
    return 0.0 if value is None else value


def histogram_quantile_bound(gw: RunningGateway, name: str, quantile: float) -> float:
    """The smallest bucket bound holding ``quantile`` of the observations (inf when none)."""
    total = metric_value(gw, name + "_count")
    if total == 0:
        return float("inf")
    for metric in gw.gateway.metrics.registry.collect():
        if metric.name != name:
            continue
        buckets = sorted((float(s.labels["le"]), s.value) for s in metric.samples if s.name == name + "_bucket")
        for bound, count in buckets:
            if count >= quantile * total:
                return bound
    return float("inf")
