"""Length distributions: bounds, means and parse errors."""

from __future__ import annotations

import random
import statistics
from collections import Counter

import pytest

from tokenyard.bench.distributions import parse_length
from tokenyard.bench.errors import WorkloadError


def samples(raw: object, n: int = 20_000) -> list[int]:
    dist = parse_length(raw, "x")
    rng = random.Random(3)
    return [dist.sample(rng) for _ in range(n)]


def test_constant() -> None:
    assert set(samples(300, 100)) == {300}
    assert set(samples({"dist": "constant", "value": 7}, 100)) == {7}


def test_uniform_covers_the_inclusive_range() -> None:
    values = samples({"dist": "uniform", "min": 10, "max": 20})
    assert min(values) == 10 and max(values) == 20
    assert statistics.mean(values) == pytest.approx(15, rel=0.01)


def test_normal_is_clipped() -> None:
    values = samples({"dist": "normal", "mean": 100, "stddev": 50, "min": 60, "max": 130})
    assert min(values) == 60 and max(values) == 130
    unclipped = samples({"dist": "normal", "mean": 100, "stddev": 10})
    assert statistics.mean(unclipped) == pytest.approx(100, rel=0.01)


def test_lognormal_median_is_the_mean_parameter() -> None:
    values = samples({"dist": "lognormal", "mean": 200, "sigma": 0.5})
    assert statistics.median(values) == pytest.approx(200, rel=0.03)
    expected = parse_length({"dist": "lognormal", "mean": 200, "sigma": 0.5}, "x").expected
    assert expected == pytest.approx(226.6, rel=0.01)


def test_choices_follow_weights() -> None:
    counts = Counter(samples({"dist": "choices", "values": [1, 2, 3], "weights": [1, 2, 7]}))
    assert counts[3] / 20_000 == pytest.approx(0.7, abs=0.02)
    assert counts[1] / 20_000 == pytest.approx(0.1, abs=0.01)


def test_never_below_one() -> None:
    assert min(samples({"dist": "normal", "mean": 2, "stddev": 10})) >= 1


@pytest.mark.parametrize(
    "raw",
    [0, -3, True, "long", {"dist": "gamma"}, {"dist": "uniform", "min": 5}, {"dist": "uniform", "min": 9, "max": 2},
     {"dist": "normal"}, {"dist": "choices", "values": []}, {"dist": "choices", "values": [1, 2], "weights": [1]},
     {"dist": "constant", "value": 3, "extra": 1}],
)
def test_bad_lengths_are_errors(raw: object) -> None:
    with pytest.raises(WorkloadError):
        parse_length(raw, "prompt_tokens")
