"""Build the admission, rate-limit and degradation engines (and tickets) from the gateway config.

Keeps the mapping from ``tokenyard.config`` objects to engine inputs in one place, so the gateway only
calls ``rate_limiter_for(config)``, ``degrade_engine_for(config)``, ``shed_tiers(config.classes)`` and
``admission_ticket(...)``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from tokenyard.config import ClassConfig, GatewayConfig
from tokenyard.policy.degradation import DegradationSettings
from tokenyard.policy.shedding import ShedTier
from tokenyard.traffic.admission_types import AdmissionTicket
from tokenyard.traffic.degrade import DegradeEngine
from tokenyard.traffic.ratelimit import RateLimit, RateLimiter


def shed_tiers(classes: Mapping[str, ClassConfig]) -> dict[str, ShedTier]:
    """Shedding tier per class: ``sheddable: false`` and the highest-priority class (lowest number) are
    critical; the lowest-priority class is sheddable when there are several priorities; the rest standard."""
    if not classes:
        return {}
    top = min(c.priority for c in classes.values())
    bottom = max(c.priority for c in classes.values())
    tiers: dict[str, ShedTier] = {}
    for name, cls in classes.items():
        if not cls.sheddable or cls.priority == top:
            tiers[name] = ShedTier.CRITICAL
        elif cls.priority == bottom:
            tiers[name] = ShedTier.SHEDDABLE
        else:
            tiers[name] = ShedTier.STANDARD
    return tiers


def admission_ticket(
    *,
    request_id: str,
    tenant: str,
    klass: str,
    cls: ClassConfig,
    tier: ShedTier,
    pool: str,
    prompt_tokens: int,
    max_tokens: int | None,
    deadline_ms: float | None = None,
    weight: float = 1.0,
    arrival: float | None = None,
) -> AdmissionTicket:
    """The ticket for one request of class ``klass`` (config ``cls``); ``deadline_ms`` from
    ``x-tokenyard-deadline-ms``; ``arrival`` on the controller's clock (default ``time.monotonic``)."""
    return AdmissionTicket(
        request_id=request_id,
        tenant=tenant,
        klass=klass,
        priority=cls.priority,
        pool=pool,
        prompt_tokens=prompt_tokens,
        max_tokens=max_tokens,
        queue_timeout_s=cls.queue_timeout_ms / 1000,
        deadline_s=deadline_ms / 1000 if deadline_ms is not None else None,
        ttft_slo_s=cls.ttft_slo_ms / 1000 if cls.ttft_slo_ms is not None else None,
        tier=tier,
        weight=weight,
        arrival=arrival,
    )


def rate_limiter_for(config: GatewayConfig, clock: Callable[[], float] = time.monotonic) -> RateLimiter:
    """Key limits by key name, tenant limits by tenant name, class-wide limits by class name."""
    keys = {
        k.name: RateLimit(rpm=k.rpm, tpm=k.tpm, max_concurrency=k.max_concurrency)
        for k in config.keys
        if k.rpm or k.tpm or k.max_concurrency
    }
    tenants = {
        name: RateLimit(rpm=t.rpm, tpm=t.tpm, max_concurrency=t.max_concurrency)
        for name, t in config.tenants.items()
        if t.rpm or t.tpm or t.max_concurrency
    }
    classes = {
        name: RateLimit(rpm=c.rpm, tpm=c.tpm, max_concurrency=c.max_concurrency)
        for name, c in config.classes.items()
        if c.rpm or c.tpm or c.max_concurrency
    }
    return RateLimiter(keys=keys, tenants=tenants, classes=classes, clock=clock)


def degrade_engine_for(
    config: GatewayConfig,
    settings: DegradationSettings | None = None,
    *,
    clock: Callable[[], float] = time.monotonic,
    on_level_change: Callable[[int, int], None] | None = None,
) -> DegradeEngine:
    """A ladder watching every class that has a TTFT SLO."""
    slos = {name: c.ttft_slo_ms / 1000 for name, c in config.classes.items() if c.ttft_slo_ms is not None}
    return DegradeEngine(settings, ttft_slo_s=slos, clock=clock, on_level_change=on_level_change)
