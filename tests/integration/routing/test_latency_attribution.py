"""Latency attribution through the gateway: the access log line and the per-backend phase histogram."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp

from tests.integration.routing.helpers import chat, metric, post, routing_config
from tokenyard.gateway.app import running_gateway
from tokenyard.sim.testing import running_sim


async def test_phases_in_access_log_and_metrics(tmp_path: Path) -> None:
    log_path = tmp_path / "access.log"
    async with running_sim("fast", ttft_ms=80.0, itl_ms=10.0) as sim:
        config = routing_config({"chat": {"endpoints": [{"url": sim.base_url + "/v1", "name": "llm"}],
                                          "upstream_model": sim.model}},
                                access_log={"enabled": True, "path": str(log_path)})
        async with running_gateway(config) as gw, aiohttp.ClientSession() as session:
            assert (await post(session, gw, chat("chat", 10, stream=True)))[0] == 200
            assert (await post(session, gw, chat("chat", 10, stream=False)))[0] == 200
            for phase in ("queue", "connect", "network", "prefill", "decode", "upstream"):
                assert metric(gw, "tokenyard_upstream_phase_seconds_count", {"backend": "llm", "phase": phase}) >= 1
    streamed, whole = (json.loads(line) for line in log_path.read_text().splitlines())
    phases = streamed["phases_ms"]
    assert set(phases) >= {"queue", "connect", "network", "prefill", "decode"}
    assert phases["prefill"] >= 60.0  # the simulator's 80 ms to first token is the server's share
    assert phases["decode"] >= 50.0  # 9 more tokens at 10 ms
    assert 0.0 <= phases["network"] < 50.0  # loopback RTT from TCP_INFO
    assert whole["phases_ms"]["upstream"] >= 60.0 and "prefill" not in whole["phases_ms"]
