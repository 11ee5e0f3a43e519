"""Helpers for routing tests: a gateway with named pools over in-process simulators."""

from __future__ import annotations

from typing import Any

import aiohttp

from tokenyard.config import GatewayConfig, parse_config
from tokenyard.gateway.app import RunningGateway
from tokenyard.sim.testing import RunningSim


def endpoints(sims: list[RunningSim], prefix: str = "sim") -> list[dict[str, Any]]:
    """Endpoint entries named ``{prefix}{i}`` for ``sims``."""
    return [{"url": sim.base_url + "/v1", "name": f"{prefix}{i}"} for i, sim in enumerate(sims)]


def routing_config(models: dict[str, Any], **sections: Any) -> GatewayConfig:
    """A loopback gateway (auth off, no access log, admission off) with ``models`` and extra sections."""
    document: dict[str, Any] = {
        "listen": {"host": "127.0.0.1", "port": 0},
        "models": models,
        "access_log": {"enabled": False},
        "admission": {"enabled": False},
    }
    document.update(sections)
    return parse_config(document, env={})


def chat(model: str, max_tokens: int = 8, stream: bool = False, text: str = "hello") -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}], "max_tokens": max_tokens,
            "stream": stream}


async def post(session: aiohttp.ClientSession, gw: RunningGateway, body: dict[str, Any],
               headers: dict[str, str] | None = None, path: str = "/v1/chat/completions"
               ) -> tuple[int, bytes, dict[str, str]]:
    async with session.post(gw.base_url + path, json=body, headers=headers) as resp:
        return resp.status, await resp.read(), dict(resp.headers)


def metric(gw: RunningGateway, name: str, labels: dict[str, str] | None = None) -> float:
    """A sample of the gateway's registry (0 when absent)."""
    value = gw.gateway.metrics.registry.get_sample_value(name, labels or {})
    return value or 0.0
