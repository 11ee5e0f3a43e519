"""Chaos scenarios through the proxy in front of a real HTTP server: requests still complete (with client
retries) under resets and jitter, and the report shows what the fault cost."""

from __future__ import annotations

from tokenyard.chaos.api import ApiServer
from tokenyard.chaos.drivers import ApiFault, ProxyFault, http_request_loop
from tokenyard.chaos.faults import DirectionFaults, Faults
from tokenyard.chaos.proxy import ChaosProxy
from tokenyard.chaos.scenario import Sample, run_scenario


async def test_five_percent_resets_cost_retries_but_every_request_completes(proxy: ChaosProxy) -> None:
    url = f"http://127.0.0.1:{proxy.port}/echo"

    async def workload() -> list[Sample]:
        # POST: aiohttp itself silently retries idempotent requests on a dropped connection, which would hide
        # the resets from the sample's attempt count.
        return await http_request_loop(
            url, requests=100, concurrency=4, retries=3, timeout_s=5, method="POST", json_body={"p": "x" * 500}
        )

    fault = ProxyFault(proxy, Faults(down=DirectionFaults(reset_prob=0.05)), "5% connection resets")
    report = await run_scenario(workload, fault)
    print(report.render())
    for name in ("before", "during", "after"):
        assert report.phases[name].requests == 100
        assert report.phases[name].success_rate == 1.0
    assert report.phases["before"].retries == 0
    assert report.phases["after"].retries == 0
    # Seeded proxy: some of the ~100 connections of the faulty phase were reset, and each cost a retry.
    assert report.deltas["during"].retries >= 1
    assert proxy.stats.resets == report.phases["during"].retries


async def test_fifty_ms_jitter_shows_in_latency_and_goes_away_after(proxy: ChaosProxy) -> None:
    url = f"http://127.0.0.1:{proxy.port}/ping"

    async def workload() -> list[Sample]:
        return await http_request_loop(url, requests=24, concurrency=4, retries=2, timeout_s=5)

    jitter = DirectionFaults(latency_ms=50, jitter_ms=20)
    api = ApiServer(proxy)
    await api.start()
    try:
        fault = ApiFault(api.url, Faults(up=jitter, down=jitter), "50 ms +/- 20 ms each way")
        report = await run_scenario(workload, fault)
    finally:
        await api.close()
    print(report.render())
    assert all(report.phases[name].success_rate == 1.0 for name in ("before", "during", "after"))
    # Each request crosses both directions once: at least 2 x 30 ms more, whatever the machine's load.
    assert report.deltas["during"].p50_ms >= 60
    assert report.phases["during"].p50_ms > report.phases["after"].p50_ms
    assert proxy.faults == Faults()  # the API fault restored the previous (empty) faults
