"""Power-of-two-choices and locality."""

from __future__ import annotations

import random

from tokenyard.policy.pickers.endpoint import BackendLoad, EndpointView, RequestFeatures
from tokenyard.policy.pickers.locality import LocalityPicker
from tokenyard.policy.pickers.p2c import PowerOfTwoPicker, backend_cost

from .helpers import tally

NOW = 100.0


def clock() -> float:
    return NOW


def test_p2c_uses_fresh_scraped_load() -> None:
    busy = BackendLoad(running=8, waiting=10, kv_usage=0.9, scraped_at=NOW - 0.5)
    idle = BackendLoad(running=1, waiting=0, kv_usage=0.1, scraped_at=NOW - 0.5)
    pool = [EndpointView(name="busy", load=busy), EndpointView(name="idle", load=idle)]
    counts = tally(PowerOfTwoPicker(random.Random(1), clock), pool, 200)
    assert counts == {"idle": 200}


def test_p2c_falls_back_to_inflight_when_stale() -> None:
    # The scrape says "a" is idle, but it is 10 s old; the gateway's own in-flight counts say otherwise.
    stale = BackendLoad(running=0, waiting=0, scraped_at=NOW - 10)
    pool = [
        EndpointView(name="a", load=stale, inflight_requests=20),
        EndpointView(name="b", load=stale, inflight_requests=2),
    ]
    counts = tally(PowerOfTwoPicker(random.Random(1), clock, stale_after_s=2.0), pool, 100)
    assert counts == {"b": 100}


def test_p2c_never_picks_the_most_loaded_of_three() -> None:
    pool = [EndpointView(name=n, inflight_requests=r) for n, r in (("a", 1), ("b", 5), ("c", 9))]
    counts = tally(PowerOfTwoPicker(random.Random(2), clock), pool, 600)
    assert counts["c"] == 0
    # "a" wins both of its pairings, "b" only the one against "c": about 2/3 and 1/3.
    assert 330 < counts["a"] < 470 and 130 < counts["b"] < 270


def test_p2c_inflight_floor_over_scraped_queue() -> None:
    load = BackendLoad(running=0, waiting=0, kv_usage=0.0, scraped_at=NOW)
    endpoint = EndpointView(name="a", load=load, inflight_requests=7)
    assert backend_cost(endpoint, NOW, 2.0, 512.0) == 7.0


def test_p2c_is_deterministic_given_seed() -> None:
    pool = [EndpointView(name=f"e{i}") for i in range(6)]
    picker1, picker2 = PowerOfTwoPicker(random.Random(9), clock), PowerOfTwoPicker(random.Random(9), clock)
    seq1 = [picker1.pick(pool, RequestFeatures()) for _ in range(50)]
    seq2 = [picker2.pick(pool, RequestFeatures()) for _ in range(50)]
    assert seq1 == seq2
    assert len({p.name for p in seq1 if p}) > 3


def zone_pool(local_load: int) -> list[EndpointView]:
    return [
        EndpointView(name="local-1", zone="eu", inflight_requests=local_load),
        EndpointView(name="local-2", zone="eu", inflight_requests=local_load + 1),
        EndpointView(name="remote", zone="us", inflight_requests=0),
    ]


def test_locality_prefers_local_zone_even_when_remote_is_emptier() -> None:
    picker = LocalityPicker(random.Random(0), spill_at=32)
    req = RequestFeatures(zone="eu")
    assert tally(picker, zone_pool(10), 50, req) == {"local-1": 50}
    scores = picker.score(zone_pool(10), req)
    assert scores["remote"] < scores["local-2"] < scores["local-1"] == 1.0


def test_locality_spills_when_every_local_endpoint_is_overloaded() -> None:
    picker = LocalityPicker(random.Random(0), spill_at=32)
    assert tally(picker, zone_pool(40), 10, RequestFeatures(zone="eu")) == {"remote": 10}


def test_locality_spills_when_local_endpoints_are_down() -> None:
    picker = LocalityPicker(random.Random(0))
    pool = [EndpointView(name="local", zone="eu", healthy=False), EndpointView(name="remote", zone="us")]
    assert tally(picker, pool, 5, RequestFeatures(zone="eu")) == {"remote": 5}


def test_locality_without_client_zone_is_least_load() -> None:
    picker = LocalityPicker(random.Random(0))
    assert tally(picker, zone_pool(10), 5, RequestFeatures()) == {"remote": 5}
