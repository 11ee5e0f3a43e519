"""An operator's drain (``PoolHealth.drain``): every picker leaves a drained endpoint out of new requests, its
permit is refused whatever chose it, it reads as not routable but keeps its health verdict, and undrained it
returns through slow start."""

from __future__ import annotations

import pytest

from tokenyard.policy.circuit_breaker import BreakerState
from tokenyard.policy.pickers.endpoint import EndpointView, RequestFeatures
from tokenyard.policy.pickers.registry import build_picker_registry, create_picker
from tokenyard.traffic.health import Outcome, pick_with_permit

from .test_health import Clock, pool

NAMES = [f"e{i}" for i in range(4)]


def listed() -> list[EndpointView]:
    return [EndpointView(name=n, url=f"http://{n}/v1", zone="z") for n in NAMES]


@pytest.mark.parametrize("picker_name", sorted(build_picker_registry()))
@pytest.mark.parametrize("as_listed", [True, False])
def test_no_picker_chooses_a_drained_endpoint(picker_name: str, as_listed: bool) -> None:
    health = pool(Clock())
    picker = create_picker(picker_name)
    assert health.drain("e1") and health.drain("e2")
    chosen = set()
    for i in range(100):
        features = RequestFeatures(model="m", prompt_prefix=f"prompt {i % 7}", zone="z",
                                   headers={"x-tokenyard-session": f"s{i % 5}"})
        view = pick_with_permit(picker, health, listed(), features, as_listed=as_listed)
        assert view is not None
        chosen.add(view.name)
        health.report(view.name, Outcome.SUCCESS)
    assert chosen and chosen <= {"e0", "e3"}


def test_a_drained_endpoint_is_refused_a_permit_and_reads_drained_not_unhealthy() -> None:
    health = pool(Clock())
    assert health.try_begin("e0")
    health.report("e0", Outcome.SUCCESS)
    assert health.drain("e0")
    assert not health.try_begin("e0")  # even a caller that did not ask a picker
    status = health.status("e0")
    assert status.drained and not status.routable
    assert status.healthy and not status.ejected and status.circuit is BreakerState.CLOSED
    assert health.drained("e0") and not health.drained("e1")
    assert not health.drain("nope")


def test_draining_every_endpoint_leaves_nothing_routable_and_undrain_returns_through_slow_start() -> None:
    clock = Clock()
    health = pool(clock, n=2)
    health.drain("e0")
    health.drain("e1")
    assert not health.any_routable()
    clock.now = 100.0
    assert health.drain("e1", False)
    assert health.any_routable() and health.try_begin("e1")
    health.report("e1", Outcome.SUCCESS)
    assert health.status("e1").slow_start == pytest.approx(0.1)  # CONFIG: floor 0.1 over 20 s
    clock.now = 130.0
    (view,) = health.views([EndpointView(name="e1", url="http://e1/v1")], as_listed=True)
    assert view.available and view.slow_start == 1.0
    assert health.drain("e0", False) and health.drain("e0", False)  # undraining twice is harmless
