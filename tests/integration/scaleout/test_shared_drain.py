"""Backend drain across replicas: two (then three) gateways sharing a real redis-server, two simulators.

A drain asked of one replica stops every replica routing to the backend, a replica started later starts with it
drained, an undrain on any replica puts it back everywhere, and with Redis down the drain is refused (503) with
nothing changed anywhere.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import aiohttp
import pytest

from tests.conftest import RedisServer
from tests.integration.gateway.helpers import config_for
from tests.integration.scaleout.test_replicas import chat
from tokenyard.gateway.app import RunningGateway, running_gateway
from tokenyard.sim.testing import running_sim

pytestmark = pytest.mark.timeout(90)
ADMIN = {"Authorization": "Bearer admin-secret"}


async def drained(session: aiohttp.ClientSession, gw: RunningGateway, name: str) -> bool:
    async with session.get(gw.base_url + "/admin/backends", headers=ADMIN) as resp:
        assert resp.status == 200
        document = await resp.json()
    return bool({row["name"]: row["drained"] for pool in document["pools"].values() for row in pool["endpoints"]}[name])


async def set_drain(session: aiohttp.ClientSession, gw: RunningGateway, name: str, action: str
                    ) -> tuple[int, Any]:
    async with session.post(gw.base_url + f"/admin/backends/{name}/{action}", headers=ADMIN) as resp:
        return resp.status, await resp.json()


async def backends_used(session: aiohttp.ClientSession, gw: RunningGateway, count: int) -> set[str]:
    used = set()
    for _ in range(count):
        async with session.post(gw.base_url + "/v1/chat/completions", json=chat(max_tokens=2)) as resp:
            assert resp.status == 200, await resp.text()
            await resp.read()
            used.add(resp.headers["x-tokenyard-backend"])
    return used


async def eventually(predicate: Callable[[], Awaitable[bool]], timeout_s: float = 3.0) -> None:
    """Bounded poll: the change travels by pub/sub (milliseconds); 3 s is under the 5 s periodic re-read, so a
    pass means the message carried it."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


async def test_a_drain_on_one_replica_reaches_every_replica(redis_server: RedisServer) -> None:
    async with AsyncExitStack() as stack:
        a_sim = await stack.enter_async_context(running_sim("fast", ttft_ms=1, itl_ms=1, seed=1))
        b_sim = await stack.enter_async_context(running_sim("fast", ttft_ms=1, itl_ms=1, seed=2))
        models = {"sim-fast": {"endpoints": [{"url": a_sim.base_url + "/v1", "name": "sim-a"},
                                             {"url": b_sim.base_url + "/v1", "name": "sim-b"}],
                               "upstream_model": a_sim.model, "picker": "round-robin"}}
        config = config_for([a_sim], state=redis_server.url + "?timeout_ms=2000", models=models,
                            admin={"key": "admin-secret"}, routing={"slow_start": {"window_ms": 0}})
        one = await stack.enter_async_context(running_gateway(config))
        two = await stack.enter_async_context(running_gateway(config))
        session = await stack.enter_async_context(aiohttp.ClientSession())
        assert await backends_used(session, two, 4) == {"sim-a", "sim-b"}

        status, answer = await set_drain(session, one, "sim-a", "drain")
        assert status == 200 and answer == {"name": "sim-a", "drained": True, "inflight": 0, "shared": True}
        await eventually(lambda: drained(session, two, "sim-a"))
        assert await backends_used(session, two, 6) == {"sim-b"}
        assert await backends_used(session, one, 6) == {"sim-b"}

        # A replica that starts later (or a restarted worker) reads the drain from the shared state.
        three = await stack.enter_async_context(running_gateway(config))
        assert await drained(session, three, "sim-a")
        assert await backends_used(session, three, 6) == {"sim-b"}

        # Undrained through another replica: back everywhere.
        assert (await set_drain(session, two, "sim-a", "undrain"))[0] == 200

        async def undrained_everywhere() -> bool:
            return not any([await drained(session, gw, "sim-a") for gw in (one, two, three)])

        await eventually(undrained_everywhere)
        assert await backends_used(session, one, 4) == {"sim-a", "sim-b"}

        # Redis down: refused, and nothing changed on any replica.
        redis_server.stop()
        status, answer = await set_drain(session, one, "sim-b", "drain")
        assert status == 503 and answer["error"]["code"] == "shared_state_unavailable"
        assert not await drained(session, one, "sim-b")
        assert await backends_used(session, one, 4) == {"sim-a", "sim-b"}
        status, answer = await set_drain(session, one, "nope", "drain")
        assert status == 404 and answer["error"]["code"] == "backend_not_found"
