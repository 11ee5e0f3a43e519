"""The ledger of owed per-request bookkeeping: settled in order, exactly once, by whichever comes first of a
settle call (an upstream send, a metrics read) and the timer; a failing entry does not stop the others."""

from __future__ import annotations

import asyncio
import logging

import pytest
from prometheus_client import CollectorRegistry

from tokenyard.gateway.ledger import Ledger
from tokenyard.telemetry.metrics import GatewayMetrics


async def test_entries_wait_for_a_settle_and_run_once_in_order() -> None:
    ledger = Ledger(max_delay_s=60.0)
    done: list[int] = []
    for i in range(3):
        ledger.defer(done.append, i)
    await asyncio.sleep(0)
    assert done == [] and ledger.owed == 3  # nothing runs on its own before the timer
    ledger.settle()
    assert done == [0, 1, 2] and ledger.owed == 0
    ledger.settle()
    assert done == [0, 1, 2]
    ledger.close()


async def test_the_timer_settles_when_no_one_else_does() -> None:
    ledger = Ledger(max_delay_s=0.01)
    done: list[str] = []
    ledger.defer(done.append, "a")
    await asyncio.sleep(0.05)
    assert done == ["a"]
    ledger.defer(done.append, "b")  # a new entry arms a new timer
    await asyncio.sleep(0.05)
    assert done == ["a", "b"]
    ledger.close()


async def test_a_settle_leaves_the_timer_armed_for_later_entries() -> None:
    ledger = Ledger(max_delay_s=0.02)
    done: list[str] = []
    ledger.defer(done.append, "a")
    ledger.settle()
    ledger.defer(done.append, "b")  # owed after the settle: the timer armed for "a" still bounds its wait
    await asyncio.sleep(0.06)
    assert done == ["a", "b"]
    ledger.close()


async def test_a_failing_entry_is_logged_and_the_rest_still_run(caplog: pytest.LogCaptureFixture) -> None:
    ledger = Ledger(max_delay_s=60.0)
    done: list[str] = []

    def boom() -> None:
        raise RuntimeError("bookkeeping bug")

    ledger.defer(done.append, "before")
    ledger.defer(boom)
    ledger.defer(done.append, "after")
    with caplog.at_level(logging.ERROR, logger="tokenyard.gateway"):
        ledger.settle()
    assert done == ["before", "after"]
    assert "deferred bookkeeping failed" in caplog.text
    ledger.close()


async def test_an_entry_owed_while_settling_runs_in_the_same_pass() -> None:
    ledger = Ledger(max_delay_s=60.0)
    done: list[str] = []

    def first() -> None:
        done.append("first")
        ledger.defer(done.append, "owed by first")

    ledger.defer(first)
    ledger.settle()
    assert done == ["first", "owed by first"] and ledger.owed == 0
    ledger.close()


async def test_close_settles_and_stops_the_timer() -> None:
    ledger = Ledger(max_delay_s=0.01)
    done: list[str] = []
    ledger.defer(done.append, "a")
    ledger.close()
    assert done == ["a"]
    await asyncio.sleep(0.03)  # the cancelled timer does not fire
    assert done == ["a"]


def test_every_read_of_the_metrics_registry_settles_first() -> None:
    metrics = GatewayMetrics(CollectorRegistry(auto_describe=True))
    series = metrics.series("m", "standard")

    def owed() -> None:
        series.outcomes["completed"].inc()

    metrics.before_collect = owed  # as the gateway wires it: a read settles what is owed, then counts it
    labels = {"model": "m", "class": "standard", "outcome": "completed"}
    assert metrics.registry.get_sample_value("tokenyard_requests_total", labels) == 1.0
    assert b'tokenyard_requests_total{class="standard",model="m",outcome="completed"} 2.0' in metrics.render()
