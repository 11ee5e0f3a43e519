"""``tokenyard serve --upstream URL --port 0``: prints its address, serves, stops cleanly on SIGTERM and SIGINT."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import aiohttp
import pytest
from click.testing import CliRunner

from tokenyard.cli import cli
from tokenyard.sim.testing import running_sim


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_serve_upstream_prints_address_and_stops_on_signal(sig: signal.Signals) -> None:
    async with running_sim("fast") as sim:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tokenyard", "serve", "--upstream", sim.base_url, "--port", "0",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            assert proc.stdout is not None
            line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
            assert line.startswith("tokenyard serve listening on http://127.0.0.1:")
            url = line.split("listening on ", 1)[1].strip()
            async with aiohttp.ClientSession() as session:
                async with session.get(url + "/readyz") as resp:
                    assert resp.status == 200
                async with session.get(url + "/v1/models") as resp:
                    assert [m["id"] for m in (await resp.json())["data"]] == [sim.model]
                body = {"model": sim.model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
                async with session.post(url + "/v1/chat/completions", json=body) as resp:
                    assert resp.status == 200
            proc.send_signal(sig)
            assert await asyncio.wait_for(proc.wait(), 15) == 0
            access = (await proc.stdout.read()).decode()
            assert '"outcome":"completed"' in access
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


def test_serve_refuses_to_move_a_config_without_credentials_off_loopback(tmp_path: Path) -> None:
    """The auth-off rule holds for ``--host`` too: no keys + a non-loopback address is an error, not an open door."""
    config = tmp_path / "gateway.yaml"
    config.write_text("models:\n  chat:\n    endpoints: [{url: 'http://127.0.0.1:9/v1'}]\n")
    result = CliRunner().invoke(cli, ["serve", "--config", str(config), "--host", "0.0.0.0", "--port", "0"])
    assert result.exit_code == 1
    assert "listen" in result.output and "invalid configuration" in result.output
    upstream = CliRunner().invoke(cli, ["serve", "--upstream", "http://127.0.0.1:9/v1", "--host", "0.0.0.0"])
    assert upstream.exit_code == 1, upstream.output
