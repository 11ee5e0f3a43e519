"""The proxy's control API over real HTTP, and `tokenyard chaos proxy` as a process (on uvloop)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest

from tokenyard.chaos.api import ApiServer
from tokenyard.chaos.proxy import ChaosProxy

from .conftest import Origin


@pytest.fixture
async def api(proxy: ChaosProxy) -> AsyncIterator[str]:
    server = ApiServer(proxy)
    await server.start()
    try:
        yield server.url
    finally:
        await server.close()


async def timed_ping(session: aiohttp.ClientSession, port: int) -> float:
    start = time.monotonic()
    async with session.get(f"http://127.0.0.1:{port}/ping") as resp:
        assert await resp.text() == "ok"
    return time.monotonic() - start


async def test_runtime_fault_changes_apply_to_new_connections(proxy: ChaosProxy, api: str) -> None:
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=10)) as session:
        async with session.get(f"{api}/faults") as resp:
            assert (await resp.json())["down"]["latency_ms"] == 0
        assert await timed_ping(session, proxy.port) < 2.0
        async with session.post(f"{api}/faults", json={"down": {"latency_ms": 300}}) as resp:
            assert resp.status == 200
            assert (await resp.json())["down"]["latency_ms"] == 300
        assert await timed_ping(session, proxy.port) >= 0.3
        async with session.post(f"{api}/faults", json={"clear": True}) as resp:
            assert (await resp.json())["down"]["latency_ms"] == 0
        async with session.get(f"{api}/stats") as resp:
            stats = await resp.json()
        assert stats["connections_total"] == 2
        assert stats["bytes_down"] > 0 and stats["bytes_up"] > 0
        async with session.post(f"{api}/stats/reset") as resp:
            assert (await resp.json())["connections_total"] == 0


async def test_a_connection_keeps_the_faults_it_was_accepted_with(proxy: ChaosProxy, api: str) -> None:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:  # keep-alive
        async with session.post(f"{api}/faults", json={"down": {"latency_ms": 200}}) as resp:
            assert resp.status == 200
        assert await timed_ping(session, proxy.port) >= 0.2
        async with session.post(f"{api}/faults", json={"clear": True}) as resp:
            assert resp.status == 200
        assert await timed_ping(session, proxy.port) >= 0.2  # same pooled connection, same plan


@pytest.mark.parametrize(
    "body", [b"{", b'{"up": {"reset_prob": 2}}', b'{"down": {"nonsense": 1}}', b"[]"]
)
async def test_bad_faults_get_a_400_in_openai_error_format(proxy: ChaosProxy, api: str, body: bytes) -> None:
    async with aiohttp.ClientSession() as session, session.post(f"{api}/faults", data=body) as resp:
        assert resp.status == 400
        error = (await resp.json())["error"]
        assert error["code"] == "invalid_faults" and error["type"] == "invalid_request_error"
        assert error["message"]
    assert proxy.faults.up.reset_prob == 0


async def _read_line(stream: asyncio.StreamReader, prefix: str) -> str:
    async with asyncio.timeout(20):
        while line := (await stream.readline()).decode():
            if line.startswith(prefix):
                return line.strip()
    raise AssertionError(f"no line starting with {prefix!r}")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_cli_proxy_serves_and_stops_on_signals(origin: Origin, sig: signal.Signals) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tokenyard", "chaos", "proxy", "--listen-port", "0",
        "--target", f"127.0.0.1:{origin.port}", "--latency-ms", "100", "--direction", "down",
        "--api-port", "0",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        line = await _read_line(proc.stdout, "tokenyard chaos proxy listening on http://127.0.0.1:")
        port = int(line.rsplit(":", 1)[1])
        api_line = await _read_line(proc.stdout, "tokenyard chaos api listening on http://127.0.0.1:")
        api_url = api_line.rsplit(" ", 1)[1]
        connector = aiohttp.TCPConnector(force_close=True)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=10)) as s:
            assert await timed_ping(s, port) >= 0.1
            async with s.get(f"{api_url}/faults") as resp:
                assert (await resp.json())["down"]["latency_ms"] == 100
        proc.send_signal(sig)
        async with asyncio.timeout(15):
            assert await proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


@pytest.mark.parametrize("option", ["--listen-port", "--api-port"])
def test_cli_port_in_use_is_one_line(option: str) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = str(holder.getsockname()[1])
        ports = {"--listen-port": "0", "--api-port": "0", option: taken}
        result = subprocess.run([sys.executable, "-m", "tokenyard", "chaos", "proxy", "--target", "127.0.0.1:9",
                                 *[part for item in ports.items() for part in item]],
                                capture_output=True, text=True, timeout=30, check=False)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"error: {option}: cannot listen: error while attempting to bind on address ('127.0.0.1', {taken}): "
        "address already in use"], result.stderr


def test_cli_rejects_bad_target_and_bad_faults() -> None:
    from click.testing import CliRunner

    from tokenyard.cli import cli

    result = CliRunner().invoke(cli, ["chaos", "proxy", "--target", "nowhere"])
    assert result.exit_code == 2 and "HOST:PORT" in result.output
    result = CliRunner().invoke(cli, ["chaos", "proxy", "--target", "127.0.0.1:9", "--reset-prob", "3"])
    assert result.exit_code == 2 and "reset_prob" in result.output
