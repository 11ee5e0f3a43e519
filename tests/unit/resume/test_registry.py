"""The resume protocol of the registry: windows open when the last reader leaves, close unless one comes back."""

from __future__ import annotations

import asyncio

import pytest

from tokenyard.config.streams import StreamsConfig
from tokenyard.gateway.resume import RequestIdInUse, ResumeRegistry, events_key, meta_key
from tokenyard.telemetry.metrics import GatewayMetrics


def value(metrics: GatewayMetrics, name: str, **labels: str) -> float:
    found = metrics.registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


async def test_a_reader_back_within_the_window_cancels_it() -> None:
    metrics = GatewayMetrics()
    registry = ResumeRegistry(StreamsConfig(), metrics)
    expired: list[str] = []
    record = registry.open("r1", "a", "m", "live", 0.05)
    record.on_expire = lambda: expired.append("r1")
    registry.detach(record, 10.0)
    registry.attach(record, 10.5)
    await asyncio.sleep(0.1)
    assert not expired and registry.records["r1"] is record
    assert record.resumed
    assert value(metrics, "tokenyard_stream_resumes_total", **{"class": "live"}) == 1
    assert value(metrics, "tokenyard_resume_gap_seconds_sum", **{"class": "live"}) == 0.5
    await registry.close()
    assert expired == ["r1"] and "r1" not in registry.records


async def test_a_window_without_a_reader_expires_and_counts_its_tokens() -> None:
    metrics = GatewayMetrics()
    registry = ResumeRegistry(StreamsConfig(), metrics)
    record = registry.open("r2", "a", "m", "live", 0.02)
    registry.detach(record, 0.0)
    record.window_tokens = 17
    assert await record.changed(0.001)  # the detach notified the waiters
    await asyncio.sleep(0.1)
    assert record.expired and "r2" not in registry.records
    assert value(metrics, "tokenyard_resume_window_tokens_total", **{"class": "live"}) == 17


async def test_a_delivered_stream_lingers_one_window_at_no_cost() -> None:
    metrics = GatewayMetrics()
    registry = ResumeRegistry(StreamsConfig(), metrics)
    record = registry.open("r3", "", "m", "live", 0.02)
    registry.finish(record)
    registry.detach(record, 0.0, delivered=True)
    assert record.delivered and registry.records["r3"] is record
    await asyncio.sleep(0.1)
    assert "r3" not in registry.records
    assert value(metrics, "tokenyard_resume_window_tokens_total", **{"class": "live"}) == 0


async def test_a_reused_request_id_is_refused_and_never_touches_the_first_stream() -> None:
    registry = ResumeRegistry(StreamsConfig(), GatewayMetrics())
    first = registry.open("same", "a", "m", "live", 5.0)
    with pytest.raises(RequestIdInUse) as refused:
        registry.open("same", "b", "m", "live", 5.0)
    assert refused.value.status == 409 and refused.value.code == "request_id_in_use"
    assert not first.expired and registry.records["same"] is first
    await registry.close()


def test_shared_keys_are_per_tenant_and_unambiguous() -> None:
    assert meta_key("a", "x") != meta_key("b", "x")
    assert meta_key("a:b", "c") != meta_key("a", "b:c")  # ids may contain ':'
    assert events_key("a", "x") != meta_key("a", "x")


async def test_expire_detached_at_shutdown_leaves_attached_streams() -> None:
    registry = ResumeRegistry(StreamsConfig(), GatewayMetrics())
    gone = registry.open("gone", "a", "m", "live", 60.0)
    kept = registry.open("kept", "a", "m", "live", 60.0)
    registry.detach(gone, 0.0)
    registry.expire_detached()
    assert gone.expired and not kept.expired
    await registry.close()
