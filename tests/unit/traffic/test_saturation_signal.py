"""Saturation signal wiring: scraped samples, staleness and the controller's own in-flight counts."""

from __future__ import annotations

import pytest

from tokenyard.policy.adaptive_limit import AdaptiveLimitSettings
from tokenyard.policy.pickers.endpoint import BackendLoad
from tokenyard.traffic.admission import AdmissionController, AdmissionSettings
from tokenyard.traffic.admission_types import AdmissionTicket
from tokenyard.traffic.saturation_signal import SaturationSignal


async def test_scraped_stale_and_instant() -> None:
    now = [10.0]
    loads = {"a": BackendLoad(waiting=5, kv_usage=0.2, scraped_at=9.9), "b": BackendLoad(scraped_at=1.0)}
    signal = SaturationSignal({"chat": ["a", "b"], "empty": []}, loads.get, request_capacity=4,
                              clock=lambda: now[0])
    assert signal("chat") == pytest.approx((1.0 + 1.0) / 2)  # a: waiting 5/5; b: stale
    loads["b"] = BackendLoad(scraped_at=10.0)
    assert signal("chat") == pytest.approx(0.5)
    assert signal("empty") == 1.0
    ctl = AdmissionController(AdmissionSettings(limits=AdaptiveLimitSettings(initial_limit=8)),
                              clock=lambda: now[0])
    signal.inflight = ctl.endpoint_inflight
    leases = []
    for i in range(6):
        lease = await ctl.admit(AdmissionTicket(request_id=f"r{i}", tenant="t", klass="standard", priority=1,
                                                pool="chat", prompt_tokens=10, max_tokens=10))
        lease.bind_endpoint("b")
        leases.append(lease)
    assert ctl.endpoint_inflight("chat", "b") == (6, 120)
    assert signal.endpoint("chat", "b") == pytest.approx(1.5)  # 6 in flight / capacity 4, scrape says idle
    for lease in leases:
        lease.release()
    assert ctl.endpoint_inflight("chat", "b") == (0, 0)
    assert signal.endpoint("chat", "b") == 0.0
