"""Config -> engine wiring."""

from __future__ import annotations

from tokenyard.config import ClassConfig, default_classes, parse_config
from tokenyard.policy.shedding import ShedTier
from tokenyard.traffic.admission_setup import admission_ticket, degrade_engine_for, rate_limiter_for, shed_tiers
from tokenyard.traffic.ratelimit import RateTicket


def test_shed_tiers_default_and_unsheddable() -> None:
    assert shed_tiers(default_classes()) == {
        "premium": ShedTier.CRITICAL, "standard": ShedTier.STANDARD, "batch": ShedTier.SHEDDABLE}
    classes = {"a": ClassConfig(priority=0), "b": ClassConfig(priority=5, sheddable=False)}
    assert shed_tiers(classes) == {"a": ShedTier.CRITICAL, "b": ShedTier.CRITICAL}
    assert shed_tiers({"only": ClassConfig(priority=3)}) == {"only": ShedTier.CRITICAL}


def test_ticket_from_class() -> None:
    cls = default_classes()["standard"]
    t = admission_ticket(request_id="r1", tenant="acme", klass="standard", cls=cls, tier=ShedTier.STANDARD,
                         pool="chat", prompt_tokens=10, max_tokens=None, deadline_ms=1500)
    assert (t.priority, t.queue_timeout_s, t.ttft_slo_s, t.deadline_s) == (1, 10.0, 2.0, 1.5)


def test_engines_from_config() -> None:
    config = parse_config({
        "models": {"chat": {"endpoints": [{"url": "http://127.0.0.1:9001/v1"}]}},
        "tenants": {"acme": {"class": "standard", "rpm": 1}},
    })
    limiter = rate_limiter_for(config)
    ticket = RateTicket(request_id="r", key="k", tenant="acme", klass="standard", estimated_tokens=1)
    assert limiter.check(ticket).allowed
    assert not limiter.check(ticket).allowed
    engine = degrade_engine_for(config)
    assert engine.current_level("standard") == 0
