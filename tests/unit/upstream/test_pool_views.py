"""A pool's list of its endpoints' views stays current as in-flight counts change, in every pool sharing one."""

from __future__ import annotations

import random

from tokenyard.config.loader import parse_config
from tokenyard.telemetry.metrics import GatewayMetrics
from tokenyard.upstream.pools import build_pools


def test_views_follow_acquire_and_release_in_every_pool_that_lists_the_endpoint() -> None:
    urls = [f"http://10.0.0.{i}:8000/v1" for i in range(1, 6)]
    config = parse_config({
        "listen": {"host": "127.0.0.1", "port": 0},
        "models": {"a": {"endpoints": [{"url": u} for u in urls[:4]]},
                   "b": {"endpoints": [{"url": u} for u in urls[2:]]}},  # two endpoints shared with "a"
    })
    pools = build_pools(config.models, GatewayMetrics(), config.routing)
    rng = random.Random(3)
    held: list[tuple[int, int]] = []
    every = [e for pool in pools.values() for e in pool.endpoints]
    for _ in range(500):
        if held and rng.random() < 0.5:
            index, tokens = held.pop(rng.randrange(len(held)))
            every[index].release(tokens)
        else:
            index, tokens = rng.randrange(len(every)), rng.randrange(100)
            every[index].acquire(tokens)
            held.append((index, tokens))
        for pool in pools.values():
            assert pool.views == [e.view(None) for e in pool.endpoints]
            assert [(v.inflight_requests, v.inflight_tokens) for v in pool.views] == [
                (e.inflight, e.inflight_tokens) for e in pool.endpoints]
