"""Gradient2-style adaptive limit: table cases from ADMISSION.md, plus backoff."""

from __future__ import annotations

import math

import pytest

from tokenyard.policy.adaptive_limit import AdaptiveLimit, AdaptiveLimitSettings, gradient


def limit_at(value: float, **kw: float) -> AdaptiveLimit:
    return AdaptiveLimit(AdaptiveLimitSettings(initial_limit=value, **kw))  # type: ignore[arg-type]


def test_steady_delay_grows_by_a_fifth_of_sqrt_l() -> None:
    lim = limit_at(64)
    lim.update(0.1, inflight=64)  # first sample: long = short
    assert lim.exact_limit == pytest.approx(64 + 0.2 * math.sqrt(64))


@pytest.mark.parametrize(("long", "short", "g"), [(1, 1, 1), (1, 3, 0.5), (2, 3, 2 / 3), (3, 1, 1), (1, 0, 1)])
def test_gradient_clamp(long: float, short: float, g: float) -> None:
    assert gradient(long, short) == pytest.approx(g)


def test_rising_delay_shrinks_with_g_half() -> None:
    lim = limit_at(100)
    lim.update(0.1, inflight=100)
    before = lim.exact_limit
    lim.update(10.0, inflight=100)  # short >> long: g clamps at 0.5
    expected = 0.8 * before + 0.2 * (before * 0.5 + math.sqrt(before))
    assert lim.exact_limit == pytest.approx(expected, rel=1e-3)
    assert lim.exact_limit < before


def test_frozen_while_app_limited() -> None:
    lim = limit_at(40)
    lim.update(0.1, inflight=19)  # < L/2
    lim.update(5.0, inflight=19)
    assert lim.exact_limit == 40


@pytest.mark.parametrize(("start", "after"), [(2, 2), (10, 9), (100, 90), (3, 2)])
def test_backoff(start: float, after: float) -> None:
    lim = limit_at(start)
    assert lim.overload(now=0.0)
    assert lim.exact_limit == after


def test_backoff_once_per_interval_and_kv_trigger() -> None:
    lim = limit_at(100)
    assert lim.overload(now=0.0)
    assert not lim.overload(now=0.5)
    assert lim.exact_limit == 90
    assert not lim.observe_kv(0.94, now=2.0)
    assert lim.observe_kv(0.95, now=2.0)
    assert lim.exact_limit == 81


def test_bounds_and_sample_windowing() -> None:
    lim = limit_at(255, max_limit=256)
    lim.update(0.1, inflight=255)
    lim.update(0.1, inflight=255)
    assert lim.limit == 256
    lim = limit_at(16)
    for i in range(10):
        lim.sample(0.05, inflight=16, now=i * 0.1)  # all within the first second: no update yet
    assert lim.exact_limit == 16
    lim.sample(0.05, inflight=16, now=1.0)
    assert lim.exact_limit == pytest.approx(16 + 0.2 * 4)


def test_on_change_fires_when_the_whole_number_limit_moves_and_only_then() -> None:
    limit = AdaptiveLimit(AdaptiveLimitSettings(initial_limit=10, min_limit=1, max_limit=100, smoothing=0.2))
    moves: list[int] = []
    limit.on_change = lambda: moves.append(limit.limit)
    limit.update(0.1, 10)  # steady delay: grows by a fifth of sqrt(10) = 0.63, still 10 as a whole number
    assert moves == [] and limit.exact_limit > 10
    limit.update(0.1, 10)  # 11.26: the whole number moves
    assert moves == [11]
    limit.update(0.1, 2)  # app-limited: frozen, no call
    assert moves == [11]
    assert limit.overload(now=100.0)
    assert moves == [11, limit.limit] and limit.limit < 11


def test_a_sustained_server_queue_cuts_the_limit_to_this_gateways_running_share() -> None:
    lim = limit_at(64)
    # First scrape: nothing to compare with yet (a burst in transit reads as waiting too).
    assert not lim.observe_queue(running=6, waiting=14, inflight=20, scraped_at=1.0, now=1.0)
    # The same scrape seen again is not a second sample.
    assert not lim.observe_queue(running=6, waiting=14, inflight=20, scraped_at=1.0, now=1.2)
    assert lim.exact_limit == 64
    # The next scrape still shows a queue: the smaller of the two (12) counts, and 20 x 6 / 18 = 6.67 -> 6.
    assert lim.observe_queue(running=6, waiting=12, inflight=20, scraped_at=1.5, now=1.5)
    assert lim.exact_limit == 6


def test_a_queue_in_one_scrape_only_is_a_burst_in_transit() -> None:
    lim = limit_at(64)
    lim.observe_queue(running=6, waiting=0, inflight=6, scraped_at=1.0, now=1.0)
    assert not lim.observe_queue(running=6, waiting=30, inflight=36, scraped_at=1.5, now=1.5)
    assert not lim.observe_queue(running=6, waiting=0, inflight=6, scraped_at=2.0, now=2.0)
    assert lim.exact_limit == 64


def test_a_shared_server_gives_each_gateway_its_proportional_share() -> None:
    # Two gateways (or workers) with 10 in flight each on a server that runs 6: each keeps 10 x 6 / 20 = 3.
    limits = [limit_at(64), limit_at(64)]
    for lim in limits:
        lim.observe_queue(running=6, waiting=14, inflight=10, scraped_at=1.0, now=1.0)
        lim.observe_queue(running=6, waiting=14, inflight=10, scraped_at=1.5, now=1.5)
    assert [lim.limit for lim in limits] == [3, 3]


def test_queue_cuts_only_go_down_respect_min_limit_and_come_once_per_interval() -> None:
    lim = limit_at(16, min_limit=4)
    lim.observe_queue(running=6, waiting=10, inflight=16, scraped_at=1.0, now=1.0)
    assert lim.observe_queue(running=6, waiting=10, inflight=16, scraped_at=1.5, now=1.5)
    assert lim.exact_limit == 6  # 16 x 6 / 16
    # Within the interval the next cut waits, even with a deeper queue.
    assert not lim.observe_queue(running=2, waiting=20, inflight=6, scraped_at=2.0, now=2.0)
    # A server that runs little of ours (another client floods it): never below min_limit.
    assert lim.observe_queue(running=2, waiting=20, inflight=1, scraped_at=3.0, now=3.0)
    assert lim.exact_limit == 4
    # A queue while our share already fits the limit does not raise it.
    lim.observe_queue(running=60, waiting=5, inflight=4, scraped_at=4.0, now=4.0)
    assert not lim.observe_queue(running=60, waiting=5, inflight=4, scraped_at=5.0, now=5.0)
    assert lim.exact_limit == 4


def test_a_few_waiting_requests_or_a_server_that_runs_nothing_cut_nothing() -> None:
    # A busy server always shows the requests that arrived during its current step as waiting; less than a
    # tenth (queue_cut_share) of what it runs is not a queue worth moving.
    lim = limit_at(240)
    for i in range(4):
        assert not lim.observe_queue(running=200, waiting=19, inflight=219, scraped_at=float(i), now=float(i) * 2)
    # A server that runs nothing while requests wait is starting or stuck: that says nothing about capacity.
    for i in range(4, 8):
        assert not lim.observe_queue(running=0, waiting=12, inflight=12, scraped_at=float(i), now=float(i) * 2)
    assert lim.exact_limit == 240
    # At a tenth it is a queue: 220 x 200 / 220.
    lim.observe_queue(running=200, waiting=20, inflight=220, scraped_at=10.0, now=20.0)
    assert lim.observe_queue(running=200, waiting=20, inflight=220, scraped_at=11.0, now=22.0)
    assert lim.limit == 200
    # The share is a setting.
    lim = limit_at(240, queue_cut_share=0.05)
    lim.observe_queue(running=200, waiting=10, inflight=210, scraped_at=1.0, now=1.0)
    assert lim.observe_queue(running=200, waiting=10, inflight=210, scraped_at=2.0, now=2.0)
    assert lim.limit == 200
