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


class _Samples:
    """A scraper's samples and its generation (bumped on every stored sample, as ``LoadScraper`` does)."""

    def __init__(self, **loads: BackendLoad) -> None:
        self.loads = dict(loads)
        self.generation = 0
        self.reads = 0

    def store(self, name: str, load: BackendLoad) -> None:
        self.loads[name] = load
        self.generation += 1

    def get(self, name: str) -> BackendLoad | None:
        self.reads += 1
        return self.loads.get(name)


def _uncached(samples: _Samples, names: list[str], now: float) -> float:
    return SaturationSignal({"p": names}, samples.loads.get, clock=lambda: now)("p")


def test_a_pool_value_is_kept_until_a_sample_moves_or_turns_stale() -> None:
    now = [100.0]
    samples = _Samples(a=BackendLoad(waiting=1, scraped_at=99.0), b=BackendLoad(kv_usage=0.4, scraped_at=99.5))
    signal = SaturationSignal({"p": ["a", "b"]}, samples.get, clock=lambda: now[0],
                              generation=lambda: samples.generation)
    assert signal("p") == pytest.approx((0.2 + 0.5) / 2)
    reads = samples.reads
    for _ in range(100):
        assert signal("p") == pytest.approx((0.2 + 0.5) / 2)
    assert samples.reads == reads  # kept: nothing moved, nothing read again
    samples.store("a", BackendLoad(waiting=5, scraped_at=100.0))  # a new sample: seen by the next request
    assert signal("p") == pytest.approx((1.0 + 0.5) / 2) == _uncached(samples, ["a", "b"], now[0])
    now[0] = 101.5  # b (scraped at 99.5) is 2.0 s old: not stale yet (stale only when older than 2 s)
    assert signal("p") == pytest.approx((1.0 + 0.5) / 2) == _uncached(samples, ["a", "b"], now[0])
    now[0] = 101.5001  # ... and now it is, with no new sample to announce it
    assert signal("p") == pytest.approx((1.0 + 1.0) / 2) == _uncached(samples, ["a", "b"], now[0])


def test_never_scraped_endpoints_and_forget() -> None:
    now = [5.0]
    samples = _Samples()
    signal = SaturationSignal({"p": ["a"]}, samples.get, clock=lambda: now[0], generation=lambda: samples.generation)
    assert signal("p") == 1.0  # no sample at all: stale (the gateway's control turns "never scraped" into a zero)
    samples.loads["a"] = BackendLoad(scraped_at=5.0)  # a source that does not count its samples ...
    assert signal("p") == 1.0
    signal.forget()  # ... is what forget() is for (the control calls it when its scraper starts or stops)
    assert signal("p") == 0.0


def test_with_the_instant_signal_every_call_computes() -> None:
    samples = _Samples(a=BackendLoad(scraped_at=10.0))
    inflight = {"a": (0, 0)}
    signal = SaturationSignal({"p": ["a"]}, samples.get, clock=lambda: 10.0, generation=lambda: samples.generation,
                              inflight=lambda pool, name: inflight[name], request_capacity=4)
    assert signal("p") == 0.0
    inflight["a"] = (2, 0)  # no new sample, but two requests sent: seen at once
    assert signal("p") == pytest.approx(0.5)
