"""Prefix affinity (consistent hashing with bounded load) and session affinity."""

from __future__ import annotations

import math
import random

import msgspec

from tokenyard.policy.pickers.endpoint import EndpointView, RequestFeatures
from tokenyard.policy.pickers.prefix_affinity import PrefixAffinityPicker, prefix_key
from tokenyard.policy.pickers.session import SessionAffinityPicker

from .helpers import endpoints

SYSTEM = "You are a careful assistant. " * 60  # ~1.7k chars, longer than the hashed prefix


def prompts(n: int) -> list[str]:
    return [f"tenant-{i} system prompt " * 40 + f"question {i}" for i in range(n)]


def test_prefix_key_cuts_to_whole_blocks() -> None:
    assert prefix_key("a" * 100) == "a" * 64
    assert prefix_key("short") == "short"
    assert prefix_key("b" * 5000) == "b" * 1024
    assert prefix_key(SYSTEM + "question one") == prefix_key(SYSTEM + "another question")


def test_same_prefix_same_endpoint() -> None:
    picker = PrefixAffinityPicker(random.Random(0))
    pool = endpoints("a", "b", "c", "d")
    chosen = {picker.pick(pool, RequestFeatures(prompt_prefix=SYSTEM + f"q{i}")) for i in range(20)}
    assert len(chosen) == 1


def test_different_prefixes_spread() -> None:
    picker = PrefixAffinityPicker(random.Random(0))
    pool = endpoints("a", "b", "c", "d")
    chosen = [picker.pick(pool, RequestFeatures(prompt_prefix=p)) for p in prompts(400)]
    counts = {e.name: sum(1 for c in chosen if c and c.name == e.name) for e in pool}
    assert all(60 < n < 140 for n in counts.values()), counts


def test_bounded_load_never_exceeds_ceil_c_times_average() -> None:
    """Requests with one hot prefix arrive and stay in flight; no endpoint exceeds ceil(1.25 x average)."""
    picker = PrefixAffinityPicker(random.Random(0), load_factor=1.25)
    pool = {n: EndpointView(name=n) for n in ("a", "b", "c", "d", "e")}
    rng = random.Random(5)
    hot = SYSTEM
    for placed in range(1, 301):
        # 70% of traffic shares one prefix: unbounded hashing would put it all on one endpoint.
        prompt = hot if rng.random() < 0.7 else f"cold {rng.random()}" * 30
        chosen = picker.pick(list(pool.values()), RequestFeatures(prompt_prefix=prompt))
        assert chosen is not None
        pool[chosen.name] = msgspec.structs.replace(chosen, inflight_requests=chosen.inflight_requests + 1)
        bound = math.ceil(1.25 * placed / len(pool))
        assert max(e.inflight_requests for e in pool.values()) <= bound


def test_bounded_load_spills_to_ring_successor_only_when_owner_is_full() -> None:
    picker = PrefixAffinityPicker(random.Random(0))
    pool = endpoints("a", "b", "c")
    req = RequestFeatures(prompt_prefix=SYSTEM)
    owner = picker.pick(pool, req)
    assert owner is not None
    loaded = [msgspec.structs.replace(e, inflight_requests=10 if e.name == owner.name else 0) for e in pool]
    spilled = picker.pick(loaded, req)
    assert spilled is not None and spilled.name != owner.name
    scores = picker.score(loaded, req)
    assert scores[owner.name] == 0.0 and scores[spilled.name] == 1.0


def test_affinity_moves_about_one_nth_of_keys_when_an_endpoint_is_added() -> None:
    picker = PrefixAffinityPicker(random.Random(0))
    before_pool = endpoints(*(f"e{i}" for i in range(4)))
    after_pool = endpoints(*(f"e{i}" for i in range(5)))
    keys = [f"prefix number {i} " * 20 for i in range(2000)]
    before = [picker.pick(before_pool, RequestFeatures(prompt_prefix=k)) for k in keys]
    after = [picker.pick(after_pool, RequestFeatures(prompt_prefix=k)) for k in keys]
    moved = sum(1 for b, a in zip(before, after, strict=True) if b != a)
    # Ideal is 1/5 = 400 keys, every one of them onto the new endpoint.
    assert 250 < moved < 550
    assert all(a is not None and a.name == "e4" for b, a in zip(before, after, strict=True) if b != a)


def test_affinity_only_the_removed_endpoints_keys_move() -> None:
    picker = PrefixAffinityPicker(random.Random(0))
    pool = endpoints(*(f"e{i}" for i in range(5)))
    keys = [f"key {i} " * 40 for i in range(1000)]
    before = [picker.pick(pool, RequestFeatures(prompt_prefix=k)) for k in keys]
    down = [msgspec.structs.replace(e, ejected=(e.name == "e2")) for e in pool]
    after = [picker.pick(down, RequestFeatures(prompt_prefix=k)) for k in keys]
    for b, a in zip(before, after, strict=True):
        assert b is not None and a is not None
        if b.name != "e2":
            assert a.name == b.name


def test_prefix_affinity_without_prompt_uses_least_load() -> None:
    picker = PrefixAffinityPicker(random.Random(0))
    pool = [EndpointView(name="a", inflight_requests=3), EndpointView(name="b")]
    chosen = picker.pick(pool, RequestFeatures())
    assert chosen is not None and chosen.name == "b"


def test_session_affinity_is_sticky_and_falls_back() -> None:
    picker = SessionAffinityPicker(random.Random(0))
    pool = endpoints("a", "b", "c")
    for session in ("alice", "bob", "carol", "dave"):
        req = RequestFeatures(headers={"x-tokenyard-session": session})
        assert len({picker.pick(pool, req) for _ in range(10)}) == 1
    loaded = [EndpointView(name="a", inflight_requests=5), EndpointView(name="b")]
    chosen = picker.pick(loaded, RequestFeatures())
    assert chosen is not None and chosen.name == "b"


def test_session_affinity_custom_header_and_failover() -> None:
    picker = SessionAffinityPicker(random.Random(0), header="X-User")
    pool = endpoints("a", "b", "c")
    req = RequestFeatures(headers={"x-user": "u-17"})
    owner = picker.pick(pool, req)
    assert owner is not None
    survivors = [msgspec.structs.replace(e, healthy=e.name != owner.name) for e in pool]
    moved = picker.pick(survivors, req)
    assert moved is not None and moved.name != owner.name
    assert picker.pick(pool, req) == owner
