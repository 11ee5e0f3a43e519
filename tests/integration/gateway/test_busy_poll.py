"""Busy polling (``listen.busy_poll_us``, ``serve --busy-poll-us``) in a real gateway: requests start a spin that
ends a window after the latest response, an idle gateway does not spin, and the setting is checked."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import aiohttp
import pytest
from click.testing import CliRunner

from tests.integration.gateway.helpers import chat_body, gateway_for
from tokenyard.cli import cli
from tokenyard.config import ConfigError, parse_config
from tokenyard.gateway.native.site import InferenceSite
from tokenyard.sim.testing import running_sim


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def test_a_request_starts_a_spin_that_stops_after_the_window() -> None:
    async with running_sim("fast") as sim, gateway_for([sim], listen={"host": "127.0.0.1", "port": 0,
                                                                      "busy_poll_us": 100_000}) as gw:
        site = next(s for s in gw.runner.sites if isinstance(s, InferenceSite))
        poll = site._settings.busy_poll
        assert poll is not None and poll.window_s == 0.1 and not poll.spinning
        # Not an inference path: no spin. Its own connection, since a GET hands its connection to aiohttp.
        async with aiohttp.ClientSession() as other, other.get(gw.base_url + "/metrics") as resp:
            assert resp.status == 200
        assert poll.spins == 0
        async with aiohttp.ClientSession() as session:
            async with session.post(gw.base_url + "/v1/chat/completions",
                                    json=chat_body(sim.model, 4, False)) as resp:
                assert resp.status == 200
                await resp.read()
            assert poll.spinning and poll.spins == 1
            for _ in range(3):  # requests within the window extend the same spin
                async with session.post(gw.base_url + "/v1/chat/completions",
                                        json=chat_body(sim.model, 4, True)) as resp:
                    assert resp.status == 200
                    await resp.read()
            assert poll.spinning and poll.spins == 1
            for _ in range(200):
                if not poll.spinning:
                    break
                await asyncio.sleep(0.01)
            assert not poll.spinning  # the loop sleeps again
    assert site._settings.busy_poll is None  # the listener stopped: nothing left scheduled


async def test_without_the_setting_nothing_spins() -> None:
    async with running_sim("fast") as sim, gateway_for([sim]) as gw:
        site = next(s for s in gw.runner.sites if isinstance(s, InferenceSite))
        assert site._settings.busy_poll is None


async def test_serve_busy_poll_spends_cpu_only_while_traffic_flows() -> None:
    """``serve --busy-poll-us``: idle, the process uses next to no CPU; a request costs about two windows of CPU
    (the spins after its start and after its response), then it is idle again."""
    async with running_sim("fast") as sim:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tokenyard", "serve", "--upstream", sim.base_url, "--port", "0",
            "--busy-poll-us", "100000", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            assert proc.stdout is not None
            line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
            url = line.split("listening on ", 1)[1].strip()
            # Its own connection: a GET hands its connection to aiohttp.
            async with aiohttp.ClientSession() as other, other.get(url + "/readyz") as resp:
                assert resp.status == 200
            async with aiohttp.ClientSession() as session:
                await asyncio.sleep(0.3)
                before = cpu_s(proc.pid)
                await asyncio.sleep(0.5)
                idle = cpu_s(proc.pid) - before
                before = cpu_s(proc.pid)
                async with session.post(url + "/v1/chat/completions", json=chat_body(sim.model, 2, False)) as resp:
                    assert resp.status == 200
                await asyncio.sleep(0.5)
                spun = cpu_s(proc.pid) - before
                before = cpu_s(proc.pid)
                await asyncio.sleep(0.5)
                after = cpu_s(proc.pid) - before
            assert idle < 0.05, idle
            assert spun >= 0.03, spun  # a 100 ms window of polling (less only if the OS kept it off the CPU)
            assert after < 0.05, after  # and then it sleeps again
        finally:
            proc.terminate()
            await proc.wait()


def test_the_setting_is_checked() -> None:
    base = {"models": {"chat": {"endpoints": [{"url": "http://127.0.0.1:9/v1"}]}}}
    assert parse_config({**base, "listen": {"busy_poll_us": 2000}}, env={}).listen.busy_poll_us == 2000
    for bad in (-1, 100_001, "fast"):
        with pytest.raises(ConfigError) as refused:
            parse_config({**base, "listen": {"busy_poll_us": bad}}, env={})
        assert [path for path, _ in refused.value.issues] == ["listen.busy_poll_us"]
    with pytest.raises(ConfigError) as on_admin:
        parse_config({**base, "admin": {"key": "k" * 32, "listen": {"port": 0, "busy_poll_us": 1000}}}, env={})
    assert [path for path, _ in on_admin.value.issues] == ["admin.listen.busy_poll_us"]
    result = CliRunner().invoke(cli, ["serve", "--upstream", "http://127.0.0.1:9/v1", "--busy-poll-us", "-5"])
    assert result.exit_code == 2 and "--busy-poll-us" in result.output
