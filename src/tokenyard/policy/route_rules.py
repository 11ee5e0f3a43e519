"""Content-based route rules: choose the pool for a request from what it contains. Pure, first match wins.

Several specialist models can sit behind one client-facing name: images go to a vision pool, requests with
tools to a model good at tool calls, long prompts to a long-context pool, a tenant to its dedicated pool.
A rule matches when every condition it sets holds (unset conditions match anything); the first matching rule's
pool is used, and the table's default pool when none matches.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from tokenyard.policy.pickers.endpoint import RequestFeatures

_RULE_KEYS = frozenset({"pool", "has_images", "has_tools", "min_prompt_tokens", "max_prompt_tokens", "tenants",
                        "classes"})


@dataclass(frozen=True, slots=True)
class RouteRule:
    """Send matching requests to ``pool``.

    ``min_prompt_tokens`` is inclusive, ``max_prompt_tokens`` exclusive, so ``[0, 8000)`` and ``[8000, ...)``
    split cleanly. ``tenants``/``classes``: the request's tenant/traffic class must be one of them.
    """

    pool: str
    has_images: bool | None = None
    has_tools: bool | None = None
    min_prompt_tokens: int | None = None
    max_prompt_tokens: int | None = None
    tenants: frozenset[str] | None = None
    classes: frozenset[str] | None = None

    def matches(self, request: RequestFeatures) -> bool:
        """Whether every condition set on this rule holds for ``request``."""
        checks = (
            self.has_images is None or request.has_images == self.has_images,
            self.has_tools is None or request.has_tools == self.has_tools,
            self.min_prompt_tokens is None or request.prompt_tokens >= self.min_prompt_tokens,
            self.max_prompt_tokens is None or request.prompt_tokens < self.max_prompt_tokens,
            self.tenants is None or request.tenant in self.tenants,
            self.classes is None or request.traffic_class in self.classes,
        )
        return all(checks)


@dataclass(frozen=True, slots=True)
class RouteTable:
    """Ordered rules and the pool used when none matches."""

    rules: tuple[RouteRule, ...]
    default: str

    def select(self, request: RequestFeatures) -> str:
        """The pool for ``request``: the first matching rule's, else the default."""
        for rule in self.rules:
            if rule.matches(request):
                return rule.pool
        return self.default

    def pools(self) -> frozenset[str]:
        """Every pool this table can route to (to check them against the configured pools)."""
        return frozenset({self.default, *(rule.pool for rule in self.rules)})


def _optional_bool(raw: Mapping[str, object], key: str, where: str) -> bool | None:
    value = raw.get(key)
    if value is None or isinstance(value, bool):
        return value
    raise ValueError(f"{where}.{key}: expected true or false")


def _optional_count(raw: Mapping[str, object], key: str, where: str) -> int | None:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{where}.{key}: expected a non-negative integer")
    return value


def _optional_names(raw: Mapping[str, object], key: str, where: str) -> frozenset[str] | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{where}.{key}: expected a list of names")
    return frozenset(str(v) for v in value)


def parse_route_table(rules: Sequence[Mapping[str, object]], default: str, where: str = "routes") -> RouteTable:
    """Build a table from plain mappings (as loaded from YAML); errors name the offending key path."""
    parsed: list[RouteRule] = []
    for index, raw in enumerate(rules):
        here = f"{where}[{index}]"
        unknown = sorted(set(raw) - _RULE_KEYS)
        if unknown:
            raise ValueError(f"{here}: unknown keys {', '.join(unknown)}")
        pool = raw.get("pool")
        if not isinstance(pool, str) or not pool:
            raise ValueError(f"{here}.pool: expected a pool name")
        parsed.append(
            RouteRule(
                pool=pool,
                has_images=_optional_bool(raw, "has_images", here),
                has_tools=_optional_bool(raw, "has_tools", here),
                min_prompt_tokens=_optional_count(raw, "min_prompt_tokens", here),
                max_prompt_tokens=_optional_count(raw, "max_prompt_tokens", here),
                tenants=_optional_names(raw, "tenants", here),
                classes=_optional_names(raw, "classes", here),
            )
        )
    return RouteTable(tuple(parsed), default)
