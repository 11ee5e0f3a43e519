"""Per-request bookkeeping through a real gateway (gateway/ledger.py): owed after the response, settled when the
next request is sent upstream, by the timer when traffic stops, before /metrics answers, and at shutdown; never
lost, never doubled, and the endpoint's in-flight slot is freed without waiting for it."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp

from tests.integration.gateway.helpers import chat_body, gateway_for
from tokenyard.sim.testing import running_sim


def _ids(log_path: Path) -> list[str]:
    text = log_path.read_text() if log_path.exists() else ""
    return [json.loads(line)["request_id"] for line in text.splitlines() if line.strip()]


async def _ask(session: aiohttp.ClientSession, url: str, model: str, request_id: str) -> None:
    async with session.post(url + "/v1/chat/completions", json=chat_body(model, 4, False),
                            headers={"x-request-id": request_id}) as resp:
        assert resp.status == 200
        await resp.read()


async def test_owed_lines_are_settled_by_the_next_upstream_send_and_at_shutdown(tmp_path: Path) -> None:
    log_path = tmp_path / "access.log"
    async with running_sim(profile="fast") as sim:
        async with gateway_for([sim], log_path) as gw, aiohttp.ClientSession() as session:
            ledger = gw.gateway.ledger
            ledger.max_delay_s = 3600.0  # no timer in this test, and no registry read (the dashboard samples
            gw.gateway.metrics.before_collect = None  # it every second): only upstream sends and the stop settle
            await _ask(session, gw.base_url, sim.model, "first")
            await asyncio.sleep(0.05)
            assert "first" not in _ids(log_path)
            assert ledger.owed == 1
            # Owed bookkeeping is not what frees the endpoint: its in-flight slot is back already.
            assert [e.inflight for e in gw.gateway.pools["*"].endpoints] == [0]
            await _ask(session, gw.base_url, sim.model, "second")
            assert "first" in _ids(log_path)  # written while "second" waited for the model
            assert "second" not in _ids(log_path)
        assert _ids(log_path) == ["first", "second"]  # the stop settled the rest, once each


async def test_the_timer_settles_when_traffic_stops(tmp_path: Path) -> None:
    log_path = tmp_path / "access.log"
    async with running_sim(profile="fast") as sim, gateway_for([sim], log_path) as gw, \
            aiohttp.ClientSession() as session:
        gw.gateway.ledger.max_delay_s = 0.05
        await _ask(session, gw.base_url, sim.model, "alone")
        for _ in range(100):
            if _ids(log_path):
                break
            await asyncio.sleep(0.01)
        assert _ids(log_path) == ["alone"]


async def test_metrics_count_a_request_as_soon_as_it_is_answered() -> None:
    async with running_sim(profile="fast") as sim, gateway_for([sim]) as gw, aiohttp.ClientSession() as session:
        gw.gateway.ledger.max_delay_s = 3600.0
        for i in range(3):
            await _ask(session, gw.base_url, sim.model, f"r{i}")
            async with session.get(gw.base_url + "/metrics") as resp:
                text = await resp.text()
            line = next(row for row in text.splitlines()
                        if row.startswith("tokenyard_requests_total{") and 'outcome="completed"' in row)
            assert float(line.rsplit(" ", 1)[1]) == i + 1
