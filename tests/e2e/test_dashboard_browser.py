"""End to end: a simulator behind the gateway under a short workload, the dashboard driven in headless Chromium.

Checks, in the browser, that the charts hold data (the page writes the points it drew into ``data-*`` attributes),
and saves a screenshot to the test's tmp dir.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from tokenyard.bench import parse_workload, run_workload
from tokenyard.config import parse_config
from tokenyard.gateway.app import running_gateway
from tokenyard.sim.testing import running_sim

from .cdp import find_chromium, headless_page

WORKLOAD: dict[str, Any] = {
    "name": "dashboard-e2e", "duration_s": 12, "max_requests": 200, "seed": 0,
    "arrival": {"kind": "poisson", "rate": 6},
    "prompt_tokens": 64, "output_tokens": 24,
    "classes": {"premium": {"weight": 1}, "standard": {"weight": 2}},
}


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_dashboard_charts_fill_during_a_workload(tmp_path: Path) -> None:
    chromium = find_chromium()
    if chromium is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    async with running_sim(profile="large", seed=0, max_num_seqs=16, ttft_ms=80.0, itl_ms=10.0) as sim:
        config = parse_config({"models": {"*": {"endpoints": [{"url": sim.base_url + "/v1"}]}}}, env={})
        async with running_gateway(config) as gateway:
            load = asyncio.create_task(run_workload(gateway.base_url, parse_workload(WORKLOAD),
                                                    model=sim.model))
            try:
                async with headless_page(chromium, gateway.base_url + "/dashboard", tmp_path / "profile") as page:
                    state: dict[str, Any] = {}
                    for _ in range(120):  # up to ~30 s
                        state = json.loads(await page.evaluate(
                            "JSON.stringify({body: Object.assign({}, document.body.dataset),"
                            " charts: Object.fromEntries([...document.querySelectorAll('section[data-chart]')]"
                            ".map(s => [s.dataset.chart, Number(s.querySelector('canvas').dataset.points || 0)])),"
                            " status: document.getElementById('status').textContent})") or "{}")
                        charts = state.get("charts", {})
                        if (int(state.get("body", {}).get("samples", 0)) >= 6 and charts.get("ttft_p95_ms", 0) >= 6
                                and charts.get("requests_rps", 0) >= 6):
                            break
                        await asyncio.sleep(0.25)
                    await page.screenshot(tmp_path / "dashboard.png", height=1300)
            finally:
                report = await load
    body, charts = state["body"], state["charts"]
    assert state["status"].startswith("live"), state
    assert int(body["samples"]) >= 6 and int(body["polls"]) >= 2
    assert charts["ttft_p95_ms"] >= 6, charts  # both classes' TTFT p95 drawn
    assert charts["requests_rps"] >= 6 and charts["backend_inflight"] >= 6 and charts["queue_depth"] >= 0
    assert int(body["points"]) == sum(charts.values())
    assert report.summary["totals"]["completed"] > 0
    shot = tmp_path / "dashboard.png"
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
    print(f"dashboard screenshot: {shot}")
