"""Pure lifecycle policy: conditions, control state, supersession, fan-out, the valuable predicate."""

from __future__ import annotations

import pytest

from tokenyard.pipeline.event import Event
from tokenyard.pipeline.lifecycle import ControlState, FanOut, Supersession, Valuable, matches
from tokenyard.pipeline.spec import Condition, ValuableSpec


def ev(eid: str = "e1", key: str = "", tenant: str = "t", created: float = 1000.0, entry: str = "1-0",
       **data: object) -> Event:
    return Event(id=eid, entry_id=entry, data=dict(data), key=key, tenant=tenant, created_ms=created)


@pytest.mark.parametrize(("cond", "fields", "expected"), [
    (Condition(field="lang", equals="en"), {"lang": "en"}, True),
    (Condition(field="lang", equals="en"), {"lang": "de"}, False),
    (Condition(field="lang", equals="en", negate=True), {"lang": "de"}, True),
    (Condition(field="lang", one_of=("en", "fr")), {"lang": "fr"}, True),
    (Condition(field="lang", exists=True), {}, False),
    (Condition(field="lang", exists=False), {}, True),
    (Condition(field="user.score", min=0.5), {"user": {"score": 0.7}}, True),
    (Condition(field="user.score", min=0.5), {"user": {"score": 0.2}}, False),
    (Condition(field="user.score", max=0.5), {"user": {"score": "0.2"}}, False),  # not a number
    (Condition(field="n", min=1, max=3), {"n": True}, False),  # bools are not numbers
])
def test_conditions(cond: Condition, fields: dict[str, object], expected: bool) -> None:
    assert matches(cond, fields) is expected


def test_control_abort_by_id_and_by_key_up_to_the_abort_time() -> None:
    state = ControlState()
    state.apply({"action": "abort", "event_id": "e1"}, at_ms=0)
    state.apply({"action": "abort", "key": "k"}, at_ms=2000)
    assert state.is_aborted(ev("e1"))
    assert not state.is_aborted(ev("e2"))
    assert state.is_aborted(ev("e3", key="k", created=1999))
    assert not state.is_aborted(ev("e4", key="k", created=2001))  # a later event of the key runs


def test_control_pause_resume_and_bad_entries() -> None:
    state = ControlState()
    assert state.apply({"action": "pause"}, 0) == "pause" and state.paused
    assert state.apply({"action": "resume"}, 0) == "resume" and not state.paused
    with pytest.raises(ValueError):
        state.apply({"action": "abort"}, 0)
    with pytest.raises(ValueError):
        state.apply({"action": "explode"}, 0)


def test_supersession_latest_wins_by_creation_then_position() -> None:
    sup = Supersession()
    old, new = ev("a", key="k", created=1, entry="5-0"), ev("b", key="k", created=2, entry="4-0")
    sup.observe(old)
    assert not sup.is_superseded(old)
    sup.observe(new)
    assert sup.is_superseded(old) and not sup.is_superseded(new)
    same_time = ev("c", key="k", created=2, entry="6-0")
    sup.observe(same_time)
    assert sup.is_superseded(new)
    keyless = ev("d")
    sup.observe(keyless)
    assert not sup.is_superseded(keyless)


def test_fan_out_per_key_and_tenant() -> None:
    fan = FanOut(per_key=1, per_tenant=2)
    a, b, c = ev("a", key="k1"), ev("b", key="k1"), ev("c", key="k2")
    assert fan.can_start(a)
    fan.start(a)
    assert not fan.can_start(b)  # same key
    assert fan.can_start(c)
    fan.start(c)
    assert not fan.can_start(ev("d", key="k3"))  # tenant t has two running
    assert fan.can_start(ev("e", key="k3", tenant="other"))
    fan.finish(a)
    assert fan.can_start(b) and fan.keys == {"k2": 1} and fan.tenants == {"t": 1}


def young_only(event: Event, now_ms: float) -> bool:
    return event.data.get("priority") == "high" or event.age_ms(now_ms) < 10


def test_valuable_by_age_fields_and_hook() -> None:
    assert Valuable(None)(ev(), 1e12)
    by_age = Valuable(ValuableSpec(max_age_ms=500))
    assert by_age(ev(created=1000), 1400) and not by_age(ev(created=1000), 1600)
    by_field = Valuable(ValuableSpec(when=(Condition(field="score", min=0.5),)))
    assert by_field(ev(score=0.9), 0) and not by_field(ev(score=0.1), 0)
    hooked = Valuable(ValuableSpec(hook=f"{__name__}:young_only"))
    assert hooked(ev(created=1000, priority="high"), 5000)
    assert not hooked(ev(created=1000), 5000)
