"""Round-robin, weighted and least-load pickers, plus the registry."""

from __future__ import annotations

import random

import msgspec
import pytest

from tokenyard.config.models import PICKERS
from tokenyard.policy.pickers.endpoint import EndpointView, RequestFeatures
from tokenyard.policy.pickers.least_load import LeastLoadPicker
from tokenyard.policy.pickers.registry import PickerOptions, build_picker_registry, create_picker
from tokenyard.policy.pickers.round_robin import RoundRobinPicker
from tokenyard.policy.pickers.weighted import WeightedPicker

from .helpers import endpoints, tally

REQ = RequestFeatures()


def test_registry_covers_every_config_picker_name() -> None:
    assert set(build_picker_registry()) == set(PICKERS)
    for name in PICKERS:
        picker = create_picker(name, PickerOptions(seed=1))
        assert picker.name == name
        assert picker.pick(endpoints("a", "b"), REQ) is not None


def test_registry_rejects_unknown_name() -> None:
    with pytest.raises(ValueError, match="unknown picker 'nope'"):
        create_picker("nope")


def test_registry_is_a_fresh_mapping_each_time() -> None:
    first = build_picker_registry()
    first.pop("p2c")
    assert "p2c" in build_picker_registry()


@pytest.mark.parametrize(
    "name", ["round-robin", "weighted", "least-load", "p2c", "prefix-affinity", "session", "locality"]
)
@pytest.mark.parametrize(
    ("pool", "expected"),
    [
        ([], None),
        (endpoints("a", healthy=False), None),
        (endpoints("a", ejected=True), None),
        (endpoints("a", weight=0.0), None),
        ([*endpoints("a", healthy=False), *endpoints("b")], "b"),
        ([*endpoints("a", ejected=True), *endpoints("b")], "b"),
    ],
)
def test_every_picker_skips_unavailable(name: str, pool: list[EndpointView], expected: str | None) -> None:
    picker = create_picker(name, PickerOptions(seed=3))
    req = RequestFeatures(prompt_prefix="hello " * 50, headers={"x-tokenyard-session": "s1"}, zone="z1")
    for _ in range(5):
        chosen = picker.pick(pool, req)
        assert (chosen.name if chosen else None) == expected


@pytest.mark.parametrize("name", ["round-robin", "weighted", "least-load", "p2c", "prefix-affinity", "session"])
def test_scores_are_in_unit_interval(name: str) -> None:
    picker = create_picker(name, PickerOptions(seed=4))
    pool = [EndpointView(name=f"e{i}", inflight_requests=i * 3, inflight_tokens=i * 100) for i in range(5)]
    req = RequestFeatures(prompt_prefix="x" * 300, headers={"x-tokenyard-session": "abc"})
    scores = picker.score(pool, req)
    assert set(scores) == {e.name for e in pool}
    assert all(0.0 <= s <= 1.0 for s in scores.values())
    assert max(scores.values()) == 1.0


def test_round_robin_cycles_in_name_order() -> None:
    picker = RoundRobinPicker()
    pool = endpoints("c", "a", "b")
    picks = [picker.pick(pool, REQ) for _ in range(6)]
    assert [p.name for p in picks if p] == ["a", "b", "c", "a", "b", "c"]


def test_round_robin_score_prefers_next_in_turn() -> None:
    picker = RoundRobinPicker()
    pool = endpoints("a", "b", "c")
    picker.pick(pool, REQ)
    scores = picker.score(pool, REQ)
    assert max(scores, key=scores.__getitem__) == "b"


def test_weighted_ratio_is_exact_and_smooth() -> None:
    picker = WeightedPicker()
    pool = [EndpointView(name="a", weight=5), EndpointView(name="b", weight=1), EndpointView(name="c", weight=1)]
    sequence = [p.name for p in (picker.pick(pool, REQ) for _ in range(7)) if p]
    assert sequence.count("a") == 5 and sequence.count("b") == 1 and sequence.count("c") == 1
    # Smooth: never more than two "a" in a row (nginx yields a a b a c a a).
    assert "aaa" not in "".join(sequence)
    assert tally(picker, pool, 7000) == {"a": 5000, "b": 1000, "c": 1000}


def test_weighted_honours_slow_start_factor() -> None:
    picker = WeightedPicker()
    pool = [EndpointView(name="a", weight=1), EndpointView(name="b", weight=1, slow_start=0.25)]
    counts = tally(picker, pool, 1000)
    assert counts["a"] == 800 and counts["b"] == 200


@pytest.mark.parametrize(
    ("loads", "expected"),
    [
        ({"a": (5, 0), "b": (1, 0), "c": (3, 0)}, "b"),
        ({"a": (1, 4000), "b": (2, 0), "c": (3, 0)}, "b"),  # 4000 tokens weigh ~8 requests
        ({"a": (0, 0), "b": (0, 0), "c": (0, 0)}, None),
    ],
)
def test_least_load_picks_least_outstanding(loads: dict[str, tuple[int, int]], expected: str | None) -> None:
    picker = LeastLoadPicker(random.Random(0))
    pool = [EndpointView(name=n, inflight_requests=r, inflight_tokens=t) for n, (r, t) in loads.items()]
    chosen = picker.pick(pool, REQ)
    assert chosen is not None
    if expected is not None:
        assert chosen.name == expected


def test_least_load_ties_are_spread_by_rng_and_deterministic() -> None:
    pool = endpoints("a", "b", "c")
    first = tally(LeastLoadPicker(random.Random(7)), pool, 300)
    second = tally(LeastLoadPicker(random.Random(7)), pool, 300)
    assert first == second
    assert all(count > 60 for count in first.values())


def test_least_load_divides_by_weight() -> None:
    picker = LeastLoadPicker(random.Random(0))
    heavy = EndpointView(name="big", weight=4, inflight_requests=6)
    light = EndpointView(name="small", weight=1, inflight_requests=2)
    chosen = picker.pick([heavy, light], REQ)
    assert chosen is not None and chosen.name == "big"
    assert msgspec.structs.replace(heavy, slow_start=0.1).effective_weight == pytest.approx(0.4)
