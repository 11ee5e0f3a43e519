"""Routing and resilience settings: content route rules, health checks, outlier ejection, circuit breaking,
slow start, per-class retry/failover/hedging policy, load scraping, and the east-west (retrieval/tool) hops.

Two top-level sections: ``routes`` (rules per client-facing model name) and ``routing`` (everything else).
The defaults are those of docs/routing.md.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from tokenyard.config.base import NonNegativeInt, PositiveInt, Ratio, Section
from tokenyard.config.errors import join_path

PositiveMs = Annotated[float, msgspec.Meta(gt=0.0)]


class RouteRuleConfig(Section, frozen=True, kw_only=True):
    """Send requests matching every set condition to ``pool`` (first matching rule wins).

    ``min_prompt_tokens`` is inclusive, ``max_prompt_tokens`` exclusive; ``tenants``/``classes``: one of them.
    """

    pool: str
    has_images: bool | None = None
    has_tools: bool | None = None
    min_prompt_tokens: NonNegativeInt | None = None
    max_prompt_tokens: NonNegativeInt | None = None
    tenants: tuple[str, ...] | None = None
    classes: tuple[str, ...] | None = None


class HealthCheckConfig(Section, frozen=True, kw_only=True):
    """Active checks: ``GET <endpoint root><path>`` every ``interval_ms``; ``enabled`` False trusts passive
    signals only."""

    enabled: bool = True
    path: str = "/health"
    interval_ms: PositiveInt = 5_000
    timeout_ms: PositiveInt = 2_000
    unhealthy_threshold: PositiveInt = 2
    healthy_threshold: PositiveInt = 1


class OutlierSettings(Section, frozen=True, kw_only=True):
    """Passive outlier detection: eject after ``consecutive_failures`` in a row or a latency outlier, for
    ``base_ejection_ms`` x the number of recent ejections (at most ``max_ejection_ms``), never more than
    ``max_ejected_share`` of a pool at once."""

    consecutive_failures: PositiveInt = 5
    base_ejection_ms: NonNegativeInt = 30_000
    max_ejection_ms: NonNegativeInt = 300_000
    max_ejected_share: Ratio = 0.5
    latency_factor: Annotated[float, msgspec.Meta(ge=1.0)] = 3.0
    latency_margin_ms: NonNegativeInt = 50

    def __post_init__(self) -> None:
        if self.max_ejection_ms < self.base_ejection_ms:
            raise ValueError("expected base_ejection_ms <= max_ejection_ms")


class BreakerSettings(Section, frozen=True, kw_only=True):
    """Circuit breaker per endpoint: open after ``failure_threshold`` failures in a row, for ``open_ms``, then
    ``half_open_probes`` trial requests; ``success_threshold`` successes close it."""

    failure_threshold: PositiveInt = 5
    open_ms: NonNegativeInt = 10_000
    half_open_probes: PositiveInt = 1
    success_threshold: PositiveInt = 2


class SlowStartSettings(Section, frozen=True, kw_only=True):
    """A returning endpoint's weight ramps from ``floor`` to 1 over ``window_ms`` (0: off)."""

    window_ms: NonNegativeInt = 30_000
    floor: Annotated[float, msgspec.Meta(gt=0.0, le=1.0)] = 0.1
    aggression: Annotated[float, msgspec.Meta(gt=0.0)] = 1.0


class ClassRetryConfig(Section, frozen=True, kw_only=True):
    """Retry policy of one traffic class. None fields inherit the gateway's ``retries`` section.

    ``failover`` False keeps the class in its first pool (batch does not spill to the bigger region);
    ``hedge_delay_ms`` starts a second attempt when the first has not answered after that long (premium).
    """

    max_attempts: PositiveInt | None = None
    per_pool_attempts: PositiveInt | None = None
    failover: bool = True
    hedge_delay_ms: PositiveMs | None = None


class EastWestRoutesConfig(Section, frozen=True, kw_only=True):
    """The retrieval and tool hops (``POST /v1/retrieve``, ``POST /v1/tools/{name}``).

    ``retrieval_pool``/``tool_pool`` name the pools (None: the first model of kind ``retrieval``/``tool``);
    ``tools`` maps a tool name to its own pool. When the retrieval pool and its ``fallback`` pools all fail,
    ``empty_on_failure`` answers with an empty result flagged ``x-tokenyard-retrieval: skipped`` instead of an
    error. A workflow (``x-tokenyard-workflow-id``) ends ``workflow_idle_ms`` after its last hop, or at once
    on a request with ``x-tokenyard-workflow-end: true``.
    """

    retrieval_pool: str | None = None
    tool_pool: str | None = None
    tools: dict[str, str] = msgspec.field(default_factory=dict)
    empty_on_failure: bool = True
    workflow_idle_ms: PositiveInt = 30_000
    max_workflows: PositiveInt = 10_000


class RoutingConfig(Section, frozen=True, kw_only=True):
    """How the router picks, checks, ejects, retries, fails over and hedges (docs/routing.md).

    ``classes`` holds per-class retry policies (default: premium may fail over, batch may not, nobody hedges).
    ``zone_header`` carries the client's zone (locality picker); ``session_header`` the session key (session
    picker). ``scrape_interval_ms`` polls each endpoint's ``/metrics`` for the p2c picker (0: off).
    """

    health: HealthCheckConfig = msgspec.field(default_factory=HealthCheckConfig)
    outlier: OutlierSettings = msgspec.field(default_factory=OutlierSettings)
    breaker: BreakerSettings = msgspec.field(default_factory=BreakerSettings)
    slow_start: SlowStartSettings = msgspec.field(default_factory=SlowStartSettings)
    classes: dict[str, ClassRetryConfig] = msgspec.field(default_factory=lambda: {"batch": ClassRetryConfig(
        failover=False)})
    retry_min_concurrent: NonNegativeInt = 3
    zone_header: str = "x-tokenyard-zone"
    session_header: str = "x-tokenyard-session"
    scrape_interval_ms: NonNegativeInt = 500
    eastwest: EastWestRoutesConfig = msgspec.field(default_factory=EastWestRoutesConfig)


def check_routing(routes: dict[str, tuple[RouteRuleConfig, ...]], routing: RoutingConfig, models: set[str],
                  issues: list[tuple[str, str]], classes: set[str] | None = None,
                  tenants: set[str] | None = None) -> None:
    """Every name the routing sections use must be defined, so a typo is an error and not a rule that never
    matches: route tables are keyed by configured models, rules send to configured models and name configured
    tenants and classes, ``routing.classes`` names configured classes, and the east-west hops configured pools.
    ``classes``/``tenants`` None skips those checks.
    """
    for name, rules in routes.items():
        table = join_path("routes", name)
        if name not in models:
            issues.append((table, f"model {name!r} is not defined in models"))
        for index, rule in enumerate(rules):
            path = join_path(table, index)
            if rule.pool not in models:
                issues.append((join_path(path, "pool"), f"model {rule.pool!r} is not defined in models"))
            named = (("class", "classes", rule.classes, classes), ("tenant", "tenants", rule.tenants, tenants))
            for kind, key, used, defined in named:
                for position, value in enumerate(used or ()):
                    if defined is not None and value not in defined:
                        issues.append((join_path(join_path(path, key), position),
                                       f"{kind} {value!r} is not defined in {key}"))
    # The built-in default names batch; it is no error in a config whose classes have other names.
    if classes is not None and routing.classes != RoutingConfig().classes:
        for klass in routing.classes:
            if klass not in classes:
                issues.append((join_path("routing.classes", klass), f"class {klass!r} is not defined in classes"))
    ew = routing.eastwest
    pools = {"retrieval_pool": ew.retrieval_pool, "tool_pool": ew.tool_pool}
    pools.update({f"tools.{tool}": pool for tool, pool in ew.tools.items()})
    for key, pool in pools.items():
        if pool is not None and pool not in models:
            issues.append((f"routing.eastwest.{key}", f"model {pool!r} is not defined in models"))
