"""The reference proxies of ``benchmarks/proxy_floors.py`` relay a real completion from the simulator, on
keep-alive connections, so ``gateway_ab.py --floors`` compares them with the gateway on the same answers."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import aiohttp
import pytest

from tokenyard.sim.testing import running_sim

SCRIPT = Path(__file__).resolve().parents[3] / "benchmarks" / "proxy_floors.py"
BODY = {"model": "sim-fast", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 8}


async def _start(kind: str, upstream: str) -> tuple[asyncio.subprocess.Process, str]:
    proc = await asyncio.create_subprocess_exec(sys.executable, str(SCRIPT), kind, upstream,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 30)
    assert b"listening on http://" in line, line
    return proc, line.decode().split("listening on ", 1)[1].strip()


@pytest.mark.parametrize("kind", ["relay", "core", "lean"])
async def test_a_reference_proxy_relays_completions_on_one_connection(kind: str) -> None:
    async with running_sim("fast") as sim:
        proc, url = await _start(kind, sim.base_url)
        try:
            connector = aiohttp.TCPConnector(limit=1)
            async with aiohttp.ClientSession(connector=connector) as session:
                for _ in range(3):
                    async with session.post(url + "/v1/chat/completions", json=BODY) as resp:
                        assert resp.status == 200
                        answer = await resp.json()
                    assert answer["object"] == "chat.completion"
                    assert answer["usage"]["completion_tokens"] == 8
        finally:
            proc.terminate()
            assert await asyncio.wait_for(proc.wait(), 10) == 0
