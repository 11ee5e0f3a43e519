"""Which stages a gateway's chain runs: the default ``serve --upstream`` chain leaves out features that are off."""

from __future__ import annotations

from typing import Any

from tokenyard.config import config_for_upstream, parse_config
from tokenyard.gateway.services import Gateway
from tokenyard.gateway.stages.cache import cache_stage
from tokenyard.gateway.stages.chain import pass_through
from tokenyard.gateway.stages.distributed import global_limit_stage
from tokenyard.gateway.stages.ratelimit import ratelimit_stage
from tokenyard.traffic.ratelimit import RateLimit, RateLimiter


def test_default_chain_skips_rate_limits_cache_and_global_limits() -> None:
    gw = Gateway(config_for_upstream("http://127.0.0.1:9/v1"))
    assert ratelimit_stage(gw) is pass_through
    assert cache_stage(gw) is pass_through
    assert global_limit_stage(gw) is pass_through


def test_a_configured_limit_keeps_the_rate_limit_stage() -> None:
    document: dict[str, Any] = {
        "listen": {"host": "127.0.0.1", "port": 0},
        "models": {"chat": {"endpoints": [{"url": "http://127.0.0.1:9/v1"}]}},
        "tenants": {"acme": {"rpm": 5}},
        "keys": [{"key": "sk-acme", "tenant": "acme"}],
    }
    assert ratelimit_stage(Gateway(parse_config(document, env={}))) is not pass_through


def test_limiter_enabled_only_with_a_limit() -> None:
    assert not RateLimiter().enabled
    assert not RateLimiter(tenants={}).enabled
    assert RateLimiter(classes={"batch": RateLimit(rpm=10)}).enabled
