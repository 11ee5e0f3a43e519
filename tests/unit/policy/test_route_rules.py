"""Content-based route rules: first match wins."""

from __future__ import annotations

import pytest

from tokenyard.policy.pickers.endpoint import RequestFeatures
from tokenyard.policy.route_rules import RouteRule, RouteTable, parse_route_table

TABLE = parse_route_table(
    [
        {"pool": "vision", "has_images": True},
        {"pool": "acme-dedicated", "tenants": ["acme"]},
        {"pool": "tools", "has_tools": True},
        {"pool": "long", "min_prompt_tokens": 8000},
        {"pool": "small", "max_prompt_tokens": 200, "classes": ["batch"]},
    ],
    default="chat",
)


@pytest.mark.parametrize(
    ("features", "pool"),
    [
        (RequestFeatures(), "chat"),
        (RequestFeatures(has_images=True, has_tools=True, tenant="acme"), "vision"),
        (RequestFeatures(tenant="acme", has_tools=True), "acme-dedicated"),
        (RequestFeatures(tenant="other", has_tools=True), "tools"),
        (RequestFeatures(prompt_tokens=8000), "long"),
        (RequestFeatures(prompt_tokens=7999), "chat"),
        (RequestFeatures(prompt_tokens=100, traffic_class="batch"), "small"),
        (RequestFeatures(prompt_tokens=200, traffic_class="batch"), "chat"),
        (RequestFeatures(prompt_tokens=100, traffic_class="premium"), "chat"),
    ],
)
def test_first_match_wins(features: RequestFeatures, pool: str) -> None:
    assert TABLE.select(features) == pool


def test_pools_lists_every_target() -> None:
    assert TABLE.pools() == {"chat", "vision", "acme-dedicated", "tools", "long", "small"}


def test_rule_with_no_conditions_matches_everything() -> None:
    assert RouteTable((RouteRule(pool="all"),), default="x").select(RequestFeatures(has_images=True)) == "all"


def test_explicit_false_condition() -> None:
    table = RouteTable((RouteRule(pool="text-only", has_images=False),), default="vision")
    assert table.select(RequestFeatures()) == "text-only"
    assert table.select(RequestFeatures(has_images=True)) == "vision"


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"pool": "p", "colour": "red"}, r"routes\[0\]: unknown keys colour"),
        ({"has_images": True}, r"routes\[0\].pool"),
        ({"pool": "p", "has_images": "yes"}, r"routes\[0\].has_images"),
        ({"pool": "p", "min_prompt_tokens": -1}, r"routes\[0\].min_prompt_tokens"),
        ({"pool": "p", "tenants": "acme"}, r"routes\[0\].tenants"),
    ],
)
def test_parse_errors_name_the_key(rule: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_route_table([rule], default="d")
