"""The namespace variant (root): client, gateway and two simulators in their own network namespaces, 5% packet
loss (nftables random drop) on the links between the gateway and the backends. Every request completes; the
report shows the SLO cost. The processes listen only on the lab's 10.231.x addresses inside its namespaces.
"""

from __future__ import annotations

import asyncio
import json
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tokenyard.chaos.netns import Host, NetnsLab, unavailable_reason
from tokenyard.chaos.scenario import Sample, run_scenario
from tokenyard.config import parse_config

pytestmark = pytest.mark.root
KEY = "chaos-lab-key"
REQUESTS = 24
CLIENT = r"""
import asyncio, json, sys, time
import aiohttp
url, key, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
async def main():
    out = []
    async with aiohttp.ClientSession(headers={"Authorization": "Bearer " + key}) as s:
        async def one():
            t = time.monotonic()
            try:
                async with s.post(url + "/v1/chat/completions", timeout=aiohttp.ClientTimeout(total=30), json={
                        "model": "chat", "max_tokens": 32, "stream": True,
                        "messages": [{"role": "user", "content": "hi " * 50}]}) as r:
                    ok = r.status == 200 and b"[DONE]" in await r.read()
            except Exception:
                ok = False
            out.append([time.monotonic() - t, ok])
        for _ in range(n // 4):
            await asyncio.gather(*(one() for _ in range(4)))
    print(json.dumps(out))
asyncio.run(main())
"""


def wait_listening(proc: subprocess.Popen[str], what: str, timeout: float = 20.0) -> str:
    """Read the process's stdout until its ``listening on`` line; returns the URL."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.2)
        if ready:
            line = proc.stdout.readline()
            if "listening on" in line:
                return line.rsplit(" ", 1)[1].strip()
        if proc.poll() is not None:
            break
    raise AssertionError(f"{what} did not start")


class LinkLoss:
    """``percent`` % loss on both ends of the gateway <-> backend link (not on the client's link)."""

    def __init__(self, lab: NetnsLab, ends: list[tuple[Host, str]], percent: int) -> None:
        self.name = f"{percent}% packet loss between gateway and backends (nftables)"
        self._lab, self._ends, self._percent = lab, ends, percent
        self.dropped = 0

    async def inject(self) -> None:
        for host, ifname in self._ends:
            self._lab.add_loss(host, self._percent, ifname)

    async def clear(self) -> None:
        for host, _ in self._ends:
            self.dropped += self._lab.nft_drops(host)
            self._lab.clear_nft(host)


@pytest.mark.skipif(shutil.which("nft") is None, reason="`nft` not installed (Debian package nftables)")
async def test_five_percent_loss_between_gateway_and_backends(tmp_path: Path) -> None:
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(f"netns lab unavailable: {reason}")
    with NetnsLab() as lab:
        client, gateway, backend = lab.add_host("c"), lab.add_host("g"), lab.add_host("b")
        front = lab.link(client, gateway)
        back = lab.link(gateway, backend)
        sims = [backend.popen([sys.executable, "-m", "tokenyard", "sim", "--host", back.b_addr, "--port",
                               str(8000 + i), "--profile", "fast", "--seed", str(i)]) for i in range(2)]
        sim_urls = [wait_listening(proc, "simulator") for proc in sims]
        document = {
            "listen": {"host": front.b_addr, "port": 8080},
            "keys": [{"key": KEY, "tenant": "lab"}], "tenants": {"lab": {}},
            "access_log": {"enabled": False},
            "models": {"chat": {"endpoints": [{"url": url + "/v1", "name": f"sim{i}"} for i, url in
                                              enumerate(sim_urls)], "upstream_model": "sim-fast"}},
            "routing": {"outlier": {"consecutive_failures": 20}},
        }
        parse_config(document, env={})  # fails here, not in the namespace, if the document is wrong
        config_path = tmp_path / "gateway.yaml"
        config_path.write_text(yaml.safe_dump(document))
        gw_url = wait_listening(gateway.popen([sys.executable, "-m", "tokenyard", "serve", "--config",
                                               str(config_path)]), "gateway")
        assert gw_url.startswith(f"http://{front.b_addr}:")

        async def workload() -> list[Sample]:
            result = await asyncio.to_thread(client.exec, [sys.executable, "-c", CLIENT, gw_url, KEY,
                                                           str(REQUESTS)], timeout=120)
            return [Sample(latency, ok) for latency, ok in json.loads(result.stdout)]

        fault = LinkLoss(lab, [(gateway, back.a_if), (backend, back.b_if)], 5)
        report = await asyncio.wait_for(run_scenario(workload, fault), timeout=200)
        print("\n" + report.render() + f"\npackets dropped: {fault.dropped}")
        assert fault.dropped > 0
        for phase in ("before", "during", "after"):
            assert report.phases[phase].requests == REQUESTS
            assert report.phases[phase].success_rate == 1.0, report.render()
