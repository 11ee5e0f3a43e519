"""Backend state and drain through the admin API, with two simulators behind a real gateway: a drained backend
gets no new request while the one it was serving runs to its end; undrained, it is picked again."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from tests.integration.traffic.admission_helpers import ADMIN, ADMIN_KEY, chat, sim_url
from tokenyard.config import parse_config
from tokenyard.gateway.app import RunningGateway, running_gateway
from tokenyard.sim.testing import RunningSim, running_sim

pytestmark = pytest.mark.timeout(60)


def two_backend_config(a: RunningSim, b: RunningSim, picker: str) -> Any:
    return parse_config({
        "listen": {"host": "127.0.0.1", "port": 0},
        "admin": {"key": ADMIN_KEY},
        "models": {"chat": {"endpoints": [{"url": sim_url(a), "name": "sim-a"}, {"url": sim_url(b), "name": "sim-b"}],
                            "upstream_model": a.model, "picker": picker}},
        "routing": {"slow_start": {"window_ms": 0}},
        "access_log": {"enabled": False},
    }, env={})


async def admin(session: aiohttp.ClientSession, gw: RunningGateway, method: str, path: str,
                headers: dict[str, str] | None = None) -> tuple[int, Any]:
    async with session.request(method, gw.base_url + path, headers=ADMIN if headers is None else headers) as resp:
        return resp.status, await resp.json(content_type=None)


def rows(document: Any) -> dict[str, Any]:
    return {row["name"]: row for row in document["pools"]["chat"]["endpoints"]}


async def backend_of(session: aiohttp.ClientSession, gw: RunningGateway) -> str:
    async with session.post(gw.base_url + "/v1/chat/completions", json=chat("chat", 2)) as resp:
        assert resp.status == 200, await resp.text()
        await resp.read()
        return resp.headers["x-tokenyard-backend"]


@pytest.mark.parametrize("picker", ["least-load", "round-robin", "p2c", "prefix-affinity"])
async def test_drain_moves_new_requests_and_lets_in_flight_ones_finish(picker: str) -> None:
    async with running_sim("fast", seed=1, itl_ms=20.0) as a, running_sim("fast", seed=2, itl_ms=20.0) as b, \
            running_gateway(two_backend_config(a, b, picker)) as gw, aiohttp.ClientSession() as session:
        status, document = await admin(session, gw, "GET", "/admin/backends")
        assert status == 200
        state = rows(document)
        assert set(state) == {"sim-a", "sim-b"}
        assert all(r["ready"] and not r["drained"] and r["healthy"] and r["circuit"] == "closed"
                   for r in state.values())
        assert state["sim-a"]["url"] == sim_url(a) and state["sim-a"]["inflight"] == 0

        # Steer a long stream to sim-a by draining sim-b first.
        assert (await admin(session, gw, "POST", "/admin/backends/sim-b/drain"))[0] == 200
        stream = await session.post(gw.base_url + "/v1/chat/completions", json=chat("chat", 40, stream=True))
        assert stream.status == 200 and stream.headers["x-tokenyard-backend"] == "sim-a"
        assert (await admin(session, gw, "POST", "/admin/backends/sim-b/undrain"))[0] == 200

        status, answer = await admin(session, gw, "POST", "/admin/backends/sim-a/drain")
        assert status == 200 and answer == {"name": "sim-a", "drained": True, "inflight": 1, "shared": False}
        state = rows((await admin(session, gw, "GET", "/admin/backends"))[1])
        assert state["sim-a"]["drained"] and not state["sim-a"]["ready"] and state["sim-a"]["inflight"] == 1
        assert state["sim-a"]["healthy"] and not state["sim-a"]["ejected"]  # drained is not unhealthy
        assert state["sim-b"]["ready"]
        gw.gateway.router.refresh_gauges()  # a planned drain is no outage: no "backend down" alert
        assert gw.gateway.metrics.registry.get_sample_value("tokenyard_backend_up", {"backend": "sim-a"}) == 1

        backends = [await backend_of(session, gw) for _ in range(8)]
        assert backends == ["sim-b"] * 8

        body = await stream.read()  # the request already on sim-a runs to its end
        stream.close()
        assert body.rstrip().endswith(b"data: [DONE]")
        stats = await a.stats()
        assert stats["completed_requests"] == 1 and stats["aborted_requests"] == 0
        assert rows((await admin(session, gw, "GET", "/admin/backends"))[1])["sim-a"]["inflight"] == 0

        assert (await admin(session, gw, "POST", "/admin/backends/sim-a/undrain"))[1]["drained"] is False
        seen = {await backend_of(session, gw) for _ in range(16)}
        assert "sim-a" in seen


async def test_unknown_backend_and_missing_credential() -> None:
    async with running_sim("fast", seed=3) as a, running_sim("fast", seed=4) as b, \
            running_gateway(two_backend_config(a, b, "least-load")) as gw, aiohttp.ClientSession() as session:
        status, error = await admin(session, gw, "POST", "/admin/backends/nope/drain")
        assert status == 404 and error["error"]["code"] == "backend_not_found"
        assert set(error["error"]) >= {"message", "type", "code"}
        status, error = await admin(session, gw, "GET", "/admin/backends", headers={})
        assert status == 401
        status, _ = await admin(session, gw, "POST", "/admin/backends/sim-a/drain", headers={})
        assert status == 401
        assert not rows((await admin(session, gw, "GET", "/admin/backends"))[1])["sim-a"]["drained"]


async def test_draining_every_backend_makes_the_gateway_not_ready() -> None:
    async with running_sim("fast", seed=5) as a, running_sim("fast", seed=6) as b, \
            running_gateway(two_backend_config(a, b, "least-load")) as gw, aiohttp.ClientSession() as session:
        for name in ("sim-a", "sim-b"):
            assert (await admin(session, gw, "POST", f"/admin/backends/{name}/drain"))[0] == 200
        async with session.get(gw.base_url + "/readyz") as resp:
            assert resp.status == 503
        async with session.post(gw.base_url + "/v1/chat/completions", json=chat("chat", 2)) as resp:
            assert resp.status == 503
            assert (await resp.json())["error"]["code"] == "no_healthy_upstream"
        assert (await admin(session, gw, "POST", "/admin/backends/sim-b/undrain"))[0] == 200
        async with session.get(gw.base_url + "/readyz") as resp:
            assert resp.status == 200
        assert await backend_of(session, gw) == "sim-b"
