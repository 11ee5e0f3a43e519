"""The fault model: parsing, validation and per-connection plans from a seeded RNG."""

from __future__ import annotations

import random

import pytest

from tokenyard.chaos.faults import (
    DirectionFaults,
    Faults,
    FaultsInvalid,
    faults_to_dict,
    parse_faults,
    plan_connection,
)


def test_parse_round_trips_and_missing_fields_mean_no_fault() -> None:
    faults = parse_faults(b'{"down": {"latency_ms": 50, "jitter_ms": 20}}')
    assert faults.down.latency_ms == 50
    assert faults.up == DirectionFaults()
    assert parse_faults(faults_to_dict(faults)) == faults


def test_clear_removes_every_fault() -> None:
    assert parse_faults(b'{"clear": true}') == Faults()


@pytest.mark.parametrize(
    ("body", "key"),
    [
        (b"not json", "body"),
        (b"[1]", "body"),
        (b'{"up": {"latency_ms": -1}}', "up.latency_ms"),
        (b'{"down": {"reset_prob": 1.5}}', "down.reset_prob"),
        (b'{"down": {"slice_bytes": -3}}', "down.slice_bytes"),
        (b'{"up": {"close_after_bytes": -3}}', "up.close_after_bytes"),
        (b'{"sideways": {}}', "body"),
        (b'{"up": {"latency": 5}}', "body"),
        (b'{"up": {"latency_ms": "fast"}}', "body"),
    ],
)
def test_bad_faults_are_reported_with_their_key(body: bytes, key: str) -> None:
    with pytest.raises(FaultsInvalid) as info:
        parse_faults(body)
    assert info.value.issues[0][0] == key


def test_plans_are_reproducible_for_a_seed() -> None:
    faults = Faults(up=DirectionFaults(reset_prob=0.3, latency_ms=5, probability=0.5))
    first = [plan_connection(faults, rng) for rng in [random.Random(42)] for _ in range(50)]
    rng = random.Random(42)
    second = [plan_connection(faults, rng) for _ in range(50)]
    assert first == second


def test_reset_probability_matches_over_many_connections() -> None:
    rng = random.Random(1)
    faults = Faults(down=DirectionFaults(reset_prob=0.05, reset_after_bytes=10))
    plans = [plan_connection(faults, rng) for _ in range(4000)]
    resets = [p for p in plans if p.down.reset_after is not None]
    assert 0.035 < len(resets) / len(plans) < 0.065
    assert all(p.down.reset_after == 10 for p in resets)
    assert all(p.up.reset_after is None for p in plans)


def test_shaping_probability_gates_latency_but_not_close() -> None:
    rng = random.Random(5)
    faults = Faults(up=DirectionFaults(latency_ms=100, bandwidth_kbps=80, probability=0.0, close_after_bytes=9))
    plan = plan_connection(faults, rng).up
    assert plan.latency_s == 0 and plan.bytes_per_s == 0
    assert plan.close_after == 9


def test_plan_converts_units() -> None:
    faults = Faults(down=DirectionFaults(latency_ms=50, jitter_ms=20, bandwidth_kbps=800, slice_bytes=7,
                                         slice_delay_ms=2, blackhole_prob=1.0))
    plan = plan_connection(faults, random.Random(0)).down
    assert plan.latency_s == pytest.approx(0.05)
    assert plan.jitter_s == pytest.approx(0.02)
    assert plan.bytes_per_s == pytest.approx(100_000)
    assert plan.slice_bytes == 7
    assert plan.slice_delay_s == pytest.approx(0.002)
    assert plan.blackhole
