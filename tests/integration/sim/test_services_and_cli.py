"""Retrieval and tool kinds over HTTP, and the `tokenyard sim` command (single and fleet) as a subprocess."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from pathlib import Path

import aiohttp
import pytest

from tokenyard.sim.faults import FaultConfig
from tokenyard.sim.services import RetrievalSim, ServiceParams, ToolSim
from tokenyard.sim.testing import running_sim


async def test_retrieval_documents_latency_and_misses() -> None:
    sim = RetrievalSim(ServiceParams(base_ms=5.0, per_item_ms=30.0, latency_sigma=0.0, seed=1))
    await sim.start()
    try:
        async with aiohttp.ClientSession() as session:
            url = sim.base_url + "/v1/retrieve"
            loop = asyncio.get_running_loop()
            start = loop.time()
            async with session.post(url, json={"query": "what is kv cache", "top_k": 10}) as resp:
                data = await resp.json()
            assert loop.time() - start >= 0.3  # 5 + 30 * 10 ms
            assert len(data["documents"]) == 10 and data["miss"] is False
            assert data["latency_ms"] == pytest.approx(305.0)
            async with session.post(url, json={"query": "what is kv cache", "top_k": 2}) as resp:
                again = await resp.json()
            assert again["documents"] == data["documents"][:2]  # deterministic per query
            async with session.post(url, json={"query": 3}) as resp:
                assert resp.status == 400 and "error" in await resp.json()
            async with session.post(url, json={"query": "q", "top_k": 0}) as resp:
                assert resp.status == 400
            async with session.post(sim.base_url + "/sim/faults", json={"error_rate": 1.0, "error_status": 503}):
                pass
            async with session.post(url, json={"query": "q", "top_k": 1}) as resp:
                assert resp.status == 503
    finally:
        await sim.stop()
    assert sim.counts["completed"] == 2 and sim.counts["errors"] == 1


async def test_retrieval_miss_rate_and_tool_calls() -> None:
    retrieval = RetrievalSim(ServiceParams(base_ms=0.0, per_item_ms=0.0, miss_rate=1.0))
    tool = ToolSim(ServiceParams(base_ms=1.0, latency_sigma=0.0), FaultConfig())
    await retrieval.start()
    await tool.start()
    try:
        async with aiohttp.ClientSession() as session:
            async with session.post(retrieval.base_url + "/v1/retrieve", json={"query": "q", "top_k": 3}) as resp:
                data = await resp.json()
            assert data["miss"] is True and data["documents"] == []
            async with session.post(tool.base_url + "/v1/tools/weather", json={"city": "Oslo"}) as resp:
                result = await resp.json()
            assert result["tool"] == "weather" and result["arguments"] == {"city": "Oslo"}
            async with session.post(tool.base_url + "/v1/tools/weather", data=b"[1]") as resp:
                assert resp.status == 400
            async with session.get(tool.base_url + "/sim/stats") as resp:
                stats = await resp.json()
            assert stats["kind"] == "tool" and stats["completed"] == 1
    finally:
        await retrieval.stop()
        await tool.stop()


async def _start(args: list[str], lines: int) -> tuple[asyncio.subprocess.Process, list[str]]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tokenyard", "sim", *args, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert proc.stdout is not None
    out = []
    for _ in range(lines):
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        assert "listening on http://127.0.0.1:" in line, line
        out.append(line.strip())
    return proc, out


async def _stop(proc: asyncio.subprocess.Process) -> None:
    proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(proc.wait(), 20) == 0


async def test_cli_single_sim_with_port_zero_and_flags() -> None:
    proc, lines = await _start(["--port", "0", "--profile", "fast", "--seed", "3", "--max-num-seqs", "7",
                                "--output-len", "4", "--error-rate", "0"], 1)
    try:
        assert re.fullmatch(r"tokenyard sim listening on http://127\.0\.0\.1:\d+", lines[0])
        url = lines[0].rsplit(" ", 1)[1]
        async with aiohttp.ClientSession() as session:
            async with session.post(url + "/v1/completions", json={"model": "sim-fast", "prompt": "a",
                                                                   "max_tokens": None}) as resp:
                body = await resp.json()
            assert body["usage"]["completion_tokens"] == 4
            async with session.get(url + "/sim/stats") as resp:
                assert (await resp.json())["params"]["max_num_seqs"] == 7
    finally:
        await _stop(proc)


async def test_cli_fleet_file(tmp_path: Path) -> None:
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text("- {name: chat, kind: llm, profile: fast}\n- {name: docs, kind: retrieval}\n"
                     "- {name: tools, kind: tool, overrides: {base_ms: 1}}\n")
    proc, lines = await _start(["--fleet", str(fleet)], 3)
    try:
        assert [line.split()[2] for line in lines] == ["chat", "docs", "tools"]
        urls = [line.rsplit(" ", 1)[1] for line in lines]
        async with aiohttp.ClientSession() as session:
            for url in urls:
                async with session.get(url + "/health") as resp:
                    assert resp.status == 200
    finally:
        await _stop(proc)


async def test_cli_fleet_file_of_one_entry_names_it(tmp_path: Path) -> None:
    """docs/simulator.md: a fleet prints ``tokenyard sim NAME (KIND) listening on URL`` for each entry, also when
    it has one (it printed the single simulator's ``tokenyard sim listening on URL``)."""
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text("- {name: docs, kind: retrieval}\n")
    proc, lines = await _start(["--fleet", str(fleet)], 1)
    try:
        assert lines[0].startswith("tokenyard sim docs (retrieval) listening on http://127.0.0.1:")
    finally:
        await _stop(proc)


@pytest.mark.parametrize("overrides, message", [
    ('{miss_rate: "x"}', "miss_rate: must be a number, got 'x'"),
    ("{max_top_k: 2.5}", "max_top_k: must be an integer, got 2.5"),
    ("{base_ms: true}", "base_ms: must be a number, got True"),
])
async def test_cli_fleet_service_overrides_of_the_wrong_type(tmp_path: Path, overrides: str, message: str) -> None:
    """A retrieval/tool override of the wrong type names the field (a string failed with Python's TypeError
    text, "'<=' not supported between instances of 'int' and 'str'"; a fraction for a count was taken)."""
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(f"- {{name: docs, kind: retrieval, overrides: {overrides}}}\n")
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "tokenyard", "sim", "--fleet", str(fleet),
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2 and out == b""
    assert f"sims[0]: {message}" in err.decode() and "Traceback" not in err.decode()


async def test_cli_rejects_a_bad_fleet_file(tmp_path: Path) -> None:
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text("- {kind: gpu}\n")
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "tokenyard", "sim", "--fleet", str(fleet),
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2 and b"sims[0].kind" in err


async def test_bad_json_to_every_sim_kind_is_a_400_not_a_500() -> None:
    """JSON nested past the recursion limit (every kind, and /sim/faults) and a query with a lone surrogate (valid
    JSON) were 500s with a logged traceback."""
    deep = b"[" * 100_000 + b"]" * 100_000
    retrieval = RetrievalSim(ServiceParams(base_ms=0.0, per_item_ms=0.0))
    tool = ToolSim(ServiceParams(base_ms=0.0))
    await retrieval.start()
    await tool.start()
    try:
        async with running_sim() as llm, aiohttp.ClientSession() as session:
            for url in (retrieval.base_url + "/v1/retrieve", tool.base_url + "/v1/tools/lookup",
                        llm.base_url + "/v1/chat/completions", llm.base_url + "/sim/faults",
                        retrieval.base_url + "/sim/faults"):
                async with session.post(url, data=deep, headers={"Content-Type": "application/json"}) as resp:
                    assert resp.status == 400, url
                    assert "error" in await resp.json()
            async with session.post(retrieval.base_url + "/v1/retrieve", data=b'{"query": "a\\ud800b", "top_k": 2}',
                                    headers={"Content-Type": "application/json"}) as resp:
                assert resp.status == 200 and len((await resp.json())["documents"]) == 2
    finally:
        await retrieval.stop()
        await tool.stop()
