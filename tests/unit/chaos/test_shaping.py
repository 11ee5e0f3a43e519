"""Pure shaping arithmetic: delivery schedule, token bucket, segmenting."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokenyard.chaos.shaping import DelayLine, TokenBucket, default_burst, segments, split_at_limit


def test_latency_only_delays_each_chunk_by_exactly_the_latency() -> None:
    line = DelayLine(0.1, 0.0, random.Random(0))
    assert line.schedule(1.0) == pytest.approx(1.1)
    assert line.schedule(1.5) == pytest.approx(1.6)


@given(
    latency=st.floats(0, 0.5),
    jitter=st.floats(0, 0.5),
    gaps=st.lists(st.floats(0, 0.05), min_size=1, max_size=200),
    seed=st.integers(0, 2**32),
)
def test_delivery_times_never_go_backwards_and_respect_the_jitter_bounds(
    latency: float, jitter: float, gaps: list[float], seed: int
) -> None:
    line = DelayLine(latency, jitter, random.Random(seed))
    now, last = 0.0, float("-inf")
    for gap in gaps:
        now += gap
        at = line.schedule(now)
        assert at >= last  # order kept
        assert at >= now + max(0.0, latency - jitter) - 1e-9  # never earlier than the lower bound
        last = at


def test_jitter_draws_spread_around_the_latency() -> None:
    line = DelayLine(0.05, 0.02, random.Random(7))
    delays = [line.delay_for_next() for _ in range(2000)]
    assert min(delays) >= 0.03 - 1e-9
    assert max(delays) <= 0.07 + 1e-9
    assert 0.048 < sum(delays) / len(delays) < 0.052


def test_jitter_larger_than_latency_never_gives_a_negative_delay() -> None:
    line = DelayLine(0.01, 0.05, random.Random(3))
    assert all(line.delay_for_next() >= 0 for _ in range(500))


def test_token_bucket_allows_the_burst_then_paces_at_the_rate() -> None:
    bucket = TokenBucket(rate=1000, burst=500, now=0.0)
    assert bucket.reserve(500, now=0.0) == 0.0
    assert bucket.reserve(250, now=0.0) == pytest.approx(0.25)
    # In debt until 0.25 s; another 500 bytes then need a further 0.5 s.
    assert bucket.reserve(500, now=0.25) == pytest.approx(0.5)


def test_token_bucket_refills_but_not_beyond_the_burst() -> None:
    bucket = TokenBucket(rate=1000, burst=500, now=0.0)
    bucket.reserve(500, now=0.0)
    assert bucket.reserve(500, now=100.0) == 0.0
    assert bucket.reserve(1, now=100.0) == pytest.approx(0.001)


@given(sizes=st.lists(st.integers(1, 5000), min_size=1, max_size=100))
def test_token_bucket_long_run_rate_is_exact(sizes: list[int]) -> None:
    """A sender that always waits what it is told sends ``total`` bytes in (total - burst) / rate seconds."""
    rate, burst = 10_000.0, 1000.0
    bucket = TokenBucket(rate, burst, now=0.0)
    now = 0.0
    for size in sizes:
        now += bucket.reserve(size, now)
    assert now == pytest.approx(max(0.0, (sum(sizes) - burst) / rate), abs=1e-6)


def test_token_bucket_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        TokenBucket(0, 10, 0.0)
    with pytest.raises(ValueError):
        TokenBucket(10, 0, 0.0)


def test_default_burst_is_twenty_ms_of_traffic_but_at_least_one_kib() -> None:
    assert default_burst(100_000) == 2000
    assert default_burst(1000) == 1024


@given(data=st.binary(max_size=3000), size=st.integers(0, 100))
def test_segments_rejoin_to_the_original(data: bytes, size: int) -> None:
    pieces = list(segments(data, size))
    assert b"".join(pieces) == data
    if size:
        assert all(len(p) <= size for p in pieces)


def test_split_at_limit() -> None:
    assert split_at_limit(b"abcdef", 0, None) == (b"abcdef", False)
    assert split_at_limit(b"abcdef", 0, 4) == (b"abcd", True)
    assert split_at_limit(b"abcdef", 2, 10) == (b"abcdef", False)
    assert split_at_limit(b"abcdef", 4, 10) == (b"abcdef", True)
    assert split_at_limit(b"abc", 5, 5) == (b"", True)
