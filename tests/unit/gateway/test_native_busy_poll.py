"""The busy-poll policy (``gateway.native.busy_poll``) on a hand-driven scheduler and a hand-set clock: a poke
starts a spin, later pokes extend it, it stops a window after the latest one, and ``stop`` ends it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tokenyard.gateway.native.busy_poll import BusyPoll

US = 1e-6
TURN = 3 * US  # one loop turn with nothing else to do


class Handle:
    def __init__(self, callback: Callable[[], object]) -> None:
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Loop:
    """``call_soon`` only; ``turn()`` runs what was ready and advances the clock by one turn."""

    def __init__(self) -> None:
        self.ready: list[Handle] = []
        self.now = 100.0

    def call_soon(self, callback: Callable[[], object], *args: Any) -> Handle:
        handle = Handle(callback)
        self.ready.append(handle)
        return handle

    def turn(self, took: float = TURN) -> None:
        self.now += took
        ready, self.ready = self.ready, []
        for handle in ready:
            if not handle.cancelled:
                handle.callback()


@pytest.fixture
def loop() -> Loop:
    return Loop()


@pytest.fixture
def poll(loop: Loop) -> BusyPoll:
    return BusyPoll(loop, 1000 * US, clock=lambda: loop.now)


def spin_out(loop: Loop, poll: BusyPoll) -> float:
    """Turn the loop until the spin ends; how long that took."""
    started = loop.now
    while poll.spinning:
        loop.turn()
    return loop.now - started


def test_nothing_spins_until_poked(loop: Loop, poll: BusyPoll) -> None:
    assert not poll.spinning and not loop.ready and poll.spins == 0


def test_a_poke_spins_the_loop_for_the_window_then_it_sleeps(loop: Loop, poll: BusyPoll) -> None:
    poll.poke()
    assert poll.spinning and len(loop.ready) == 1
    assert 1000 * US <= spin_out(loop, poll) <= 1000 * US + TURN
    assert not loop.ready  # nothing left scheduled: the loop blocks in epoll again


def test_pokes_while_spinning_extend_the_same_spin(loop: Loop, poll: BusyPoll) -> None:
    poll.poke()
    for _ in range(5):  # a request every 800 us: the window never runs out
        for _ in range(200):
            loop.turn()
        loop.turn(200 * US)  # the turn that served it
        poll.poke()
        assert poll.spinning and len(loop.ready) == 1
    assert poll.spins == 1
    assert 1000 * US <= spin_out(loop, poll) <= 1000 * US + TURN


def test_a_long_turn_past_the_window_ends_the_spin(loop: Loop, poll: BusyPoll) -> None:
    """Time spent elsewhere (the OS ran another process, a long callback) counts against the window: a spin is
    bounded by wall time after the latest poke, whatever happened in between."""
    poll.poke()
    loop.turn(1500 * US)
    assert not poll.spinning


def test_stop_cancels_the_spin_and_a_later_poke_starts_again(loop: Loop, poll: BusyPoll) -> None:
    poll.poke()
    poll.stop()
    assert not poll.spinning
    loop.turn()
    assert not loop.ready
    poll.poke()
    assert poll.spinning and poll.spins == 2


def test_the_window_must_be_positive(loop: Loop) -> None:
    with pytest.raises(ValueError, match="window_s must be positive"):
        BusyPoll(loop, 0.0)
