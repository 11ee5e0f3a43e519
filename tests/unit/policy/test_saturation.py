"""Saturation table cases from ADMISSION.md."""

from __future__ import annotations

import pytest

from tokenyard.policy.saturation import (
    InstantLoad,
    SaturationSettings,
    ScrapedLoad,
    SustainedQueue,
    endpoint_saturation,
    pool_saturation,
)

S = SaturationSettings()


@pytest.mark.parametrize(
    ("load", "now", "expected"),
    [
        (ScrapedLoad(waiting=10, kv_usage=0.4, scraped_at=9.9), 10.0, 2.0),
        (ScrapedLoad(waiting=0, kv_usage=0.4, scraped_at=9.9), 10.0, 0.5),
        (ScrapedLoad(waiting=1, kv_usage=0.0, scraped_at=10.0), 10.0, 0.2),
        (ScrapedLoad(waiting=0, kv_usage=0.1, scraped_at=5.0), 10.0, 1.0),  # stale
        (ScrapedLoad(waiting=0, kv_usage=0.1, scraped_at=None), 10.0, 1.0),  # never scraped
        (None, 10.0, 1.0),  # no metrics at all
    ],
)
def test_endpoint_saturation(load: ScrapedLoad | None, now: float, expected: float) -> None:
    assert endpoint_saturation(load, now, S) == pytest.approx(expected)


def test_instant_signal_raises_a_lagging_scrape() -> None:
    fresh_idle = ScrapedLoad(waiting=0, kv_usage=0.0, scraped_at=10.0)
    burst = InstantLoad(inflight_requests=12, inflight_tokens=1000, request_capacity=8, token_capacity=100_000)
    assert endpoint_saturation(fresh_idle, 10.0, S, burst) == pytest.approx(1.5)
    tokens_heavy = InstantLoad(inflight_requests=1, inflight_tokens=90_000, request_capacity=8, token_capacity=100_000)
    assert endpoint_saturation(fresh_idle, 10.0, S, tokens_heavy) == pytest.approx(0.9)
    assert InstantLoad(inflight_requests=100).value() == 0.0  # no capacity configured: no signal


@pytest.mark.parametrize(
    ("values", "expected"),
    [([2.0, 0.0], 1.0), ([0.5], 0.5), ([], 1.0)],  # no pods: fail closed
)
def test_pool_saturation(values: list[float], expected: float) -> None:
    assert pool_saturation(values, S) == pytest.approx(expected)


def test_empty_pool_can_fail_open() -> None:
    assert pool_saturation([], SaturationSettings(empty_pool_value=0.0)) == 0.0


def test_a_queue_counts_only_when_two_scrapes_in_a_row_see_it() -> None:
    sustained = SustainedQueue()
    burst = ScrapedLoad(waiting=64, kv_usage=0.1, scraped_at=1.0)
    assert sustained.sample("a", burst).waiting == 64  # the first sample: nothing to compare with
    gone = ScrapedLoad(waiting=0, kv_usage=0.2, scraped_at=1.5)
    assert sustained.sample("a", gone).waiting == 0
    arrived = ScrapedLoad(waiting=64, kv_usage=0.3, scraped_at=2.0)  # a burst in transit between steps
    derived = sustained.sample("a", arrived)
    assert derived.waiting == 0 and derived.kv_usage == 0.3 and derived.scraped_at == 2.0
    assert sustained.sample("a", arrived) is derived  # the same scrape: computed once
    still = ScrapedLoad(waiting=40, kv_usage=0.3, scraped_at=2.5)  # a real queue persists
    assert sustained.sample("a", still).waiting == 40
    assert sustained.sample("b", arrived).waiting == 64  # per endpoint
