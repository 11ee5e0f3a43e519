"""A stream's health verdict is its end, not its head: a backend that answers every stream's head and then breaks
it (or goes silent) fails in a row and is ejected, behind a real gateway with two simulators."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from tests.integration.routing.helpers import chat, endpoints, post, routing_config
from tokenyard.gateway.app import running_gateway
from tokenyard.sim.testing import running_sim

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("faults", [{"drop_after_tokens": 2}, {"ttft_inflation_ms": 5000}],
                         ids=["broken-after-the-head", "silent-after-the-head"])
async def test_a_backend_failing_every_stream_after_its_head_is_ejected(faults: dict[str, Any]) -> None:
    async with running_sim("fast", seed=1, itl_ms=2, faults=faults) as bad, \
            running_sim("fast", seed=2, itl_ms=2) as good:
        config = routing_config(
            {"chat": {"endpoints": endpoints([bad, good]), "picker": "round-robin", "upstream_model": "sim-fast"}},
            timeouts={"first_token_ms": 300},
            routing={"outlier": {"consecutive_failures": 3, "base_ejection_ms": 60000},
                     "slow_start": {"window_ms": 0}},
        )
        async with running_gateway(config) as gw, aiohttp.ClientSession() as session:
            health = gw.gateway.pools["chat"].health
            broken = 0
            for i in range(12):
                status, raw, headers = await post(session, gw, chat("chat", 6, stream=True, text=f"q{i}"))
                if headers.get("x-tokenyard-backend") == "sim0":
                    broken += 1
                else:
                    assert status == 200 and raw.rstrip().endswith(b"data: [DONE]"), raw
                if health.status("sim0").ejected:
                    break
            assert health.status("sim0").ejected, "a backend failing every stream was never ejected"
            assert broken in (3, 4)  # the third failure in a row ejected it (its accounting runs just after it)
            for i in range(4):
                status, raw, headers = await post(session, gw, chat("chat", 6, stream=True, text=f"r{i}"))
                assert status == 200 and headers["x-tokenyard-backend"] == "sim1", raw
