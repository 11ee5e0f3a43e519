"""Redaction by default: prompts and completions reach the access log only for tenants that opted in, and only
when the log itself allows it; keys never do."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tokenyard.config import parse_config
from tokenyard.gateway.app import running_gateway
from tokenyard.sim.testing import running_sim

KEYS = {"open": "ty-open-tenant-key-0123456789", "quiet": "ty-quiet-tenant-key-0123456789"}


def config(sim_url: str, log_path: Path, log_prompts: bool) -> Any:
    return parse_config({
        "listen": {"host": "127.0.0.1", "port": 0},
        "models": {"chat": {"endpoints": [{"url": sim_url + "/v1"}], "upstream_model": "sim-fast"}},
        "tenants": {"open": {"log_prompts": True}, "quiet": {}},
        "keys": [{"key": KEYS["open"], "tenant": "open"}, {"key": KEYS["quiet"], "tenant": "quiet"}],
        "access_log": {"enabled": True, "path": str(log_path), "log_prompts": log_prompts},
    }, env={})


async def ask(session: aiohttp.ClientSession, base: str, tenant: str, stream: bool) -> None:
    body = {"model": "chat", "stream": stream, "max_tokens": 4,
            "messages": [{"role": "user", "content": f"secret question of {tenant}"}]}
    async with session.post(base + "/v1/chat/completions", json=body,
                            headers={"Authorization": f"Bearer {KEYS[tenant]}"}) as resp:
        assert resp.status == 200
        await resp.read()


@pytest.mark.parametrize("log_prompts", [True, False])
async def test_only_opted_in_tenants_are_transcribed(tmp_path: Path, log_prompts: bool) -> None:
    log_path = tmp_path / "access.log"
    async with running_sim("fast", seed=5) as sim, \
            running_gateway(config(sim.base_url, log_path, log_prompts)) as gw, aiohttp.ClientSession() as session:
        for tenant in ("open", "quiet"):
            for stream in (True, False):
                await ask(session, gw.base_url, tenant, stream)
    lines = [json.loads(line) for line in log_path.read_text().splitlines()]
    assert len(lines) == 4
    for line in lines:
        transcribed = log_prompts and line["tenant"] == "open"
        assert ("prompt" in line) is transcribed
        if transcribed:
            assert line["prompt"] == "secret question of open"
            assert len(line["completion"].split()) >= 3  # the simulator's 4-token answer, as text
    raw = log_path.read_text()
    assert "secret question of quiet" not in raw
    assert all(key not in raw for key in KEYS.values())
