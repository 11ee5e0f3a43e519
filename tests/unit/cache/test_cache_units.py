"""Pure parts of the cache: keys, the memory store's bounds, the semantic index, flights, embedding splits."""

from __future__ import annotations

import msgspec
import numpy as np
import pytest

from tokenyard.cache.coalesce import Singleflight
from tokenyard.cache.embed_batch import small_inputs, split_answer
from tokenyard.cache.normalize import BYPASS, USE, cache_decision, cache_key
from tokenyard.cache.semantic import SemanticIndex
from tokenyard.cache.store import CachedAnswer, MemoryCacheStore, decode_answer, encode_answer


def test_keys_ignore_field_order_and_output_neutral_fields() -> None:
    a = b'{"model":"m","messages":[{"role":"user","content":"x"}],"temperature":0,"user":"u1"}'
    b = b'{"temperature":0,"messages":[{"role":"user","content":"x"}],"model":"m","stream":false}'
    assert cache_key("t", "chat", "m", a, False) == cache_key("t", "chat", "m", b, False)
    assert cache_key("t", "chat", "m", a, False) != cache_key("t", "chat", "m", a, True)
    assert cache_key("t", "chat", "m", a, False) != cache_key("u", "chat", "m", a, False)
    c = b'{"model":"m","messages":[{"role":"user","content":"x"}],"temperature":0,"max_tokens":5}'
    assert cache_key("t", "chat", "m", a, False) != cache_key("t", "chat", "m", c, False)


def test_only_deterministic_or_opted_in_requests_use_the_cache() -> None:
    assert cache_decision({}, True) == USE
    assert cache_decision({}, False) == BYPASS
    assert cache_decision({"x-tokenyard-cache": "on"}, False) == USE
    assert cache_decision({"x-tokenyard-cache": "off"}, True) == BYPASS


def test_memory_store_bounds_entries_bytes_and_ttl() -> None:
    now = [0.0]
    store = MemoryCacheStore(max_entries=2, max_bytes=10, clock=lambda: now[0])
    answer = CachedAnswer(200, "application/json", b"12345", False, 1, 2)
    assert store.put_now("a", answer, 5)
    assert store.put_now("b", answer, 5)
    assert store.get_now("a") is not None  # a is now the most recently used
    assert store.put_now("c", answer, 5)
    assert store.get_now("b") is None and store.get_now("a") is not None
    assert not store.put_now("huge", CachedAnswer(200, "x", b"x" * 11, False), 5)
    now[0] = 6.0
    assert store.get_now("a") is None
    assert decode_answer(encode_answer(answer)) == answer
    assert decode_answer(b"garbage") is None


def _unit(*values: float) -> np.ndarray:
    v = np.array(values, dtype=np.float32)
    return v / np.linalg.norm(v)


def test_semantic_index_threshold_expiry_and_size() -> None:
    index = SemanticIndex(dim=2, max_entries=2)
    index.add(_unit(1, 0), "east", expires=10)
    index.add(_unit(0, 1), "north", expires=10)
    found = index.search(_unit(1, 0.1), 0.9, now=0)
    assert found is not None and found[0] == "east" and found[1] == pytest.approx(0.995, abs=1e-3)
    assert index.search(_unit(1, 1), 0.9, now=0) is None  # 0.707 to both
    assert index.search(_unit(1, 0), 0.9, now=11) is None  # expired
    index.add(_unit(-1, 0), "west", expires=10)
    assert len(index) == 2 and index.search(_unit(1, 0), 0.9, now=0) is None  # oldest dropped


async def test_a_flight_has_one_leader_until_it_ends() -> None:
    flights = Singleflight()
    flight, leader = flights.join("k")
    again, second = flights.join("k")
    assert leader and not second and again is flight and flight.followers == 1
    flight.write(b"id: 1\ndata: x\n\n")
    assert flight.events == 1
    flights.end("k", flight, True)
    assert flight.done and flight.ok and len(flights) == 0
    assert flights.join("k")[1]


def test_embedding_answers_split_back_by_position() -> None:
    assert small_inputs(b'{"model":"e","input":"a"}', 64) is not None
    assert small_inputs(b'{"model":"e","input":[1,2,3]}', 64) is None
    assert small_inputs(b'{"model":"e","input":["a","b","c"]}', 4) is None
    body = msgspec.json.encode({"object": "list", "model": "e", "usage": {"prompt_tokens": 6, "total_tokens": 6},
                                "data": [{"index": i, "embedding": [float(i)]} for i in range(3)]})
    parts = split_answer(body, [(0, 1), (1, 2)])
    assert parts is not None
    second = msgspec.json.decode(parts[1][0])
    assert [row["index"] for row in second["data"]] == [0, 1]
    assert [row["embedding"] for row in second["data"]] == [[1.0], [2.0]]
    assert parts[0][1] + parts[1][1] == 6
    assert split_answer(body, [(0, 1)]) is None
