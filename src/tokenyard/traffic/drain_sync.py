"""Backend drain shared by every gateway process on one ``SharedState`` (Redis): workers and replicas alike.

``POST /admin/backends/{name}/drain`` reaches one process (one worker of ``serve --workers N``, one replica
behind a load balancer). With a shared state that process writes the drain as a key, ``backend-drain:<name>``
(no TTL: a drain lasts until undrained, across restarts), and publishes on the ``backend-drain`` channel; every
process, the writer included, then reads the keys of its endpoints and applies them to its router. The keys,
not the messages, are the truth: a process re-reads them when it starts, on every message, and every
``resync_s``, so one that was restarted, or missed a message while Redis was unreachable, converges on its own.
Reads are serialised, so a slow read that started before a change can never overwrite the newer state.

Without a shared state (``state: memory``) there is no ``DrainSync``: the drain stays state of the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable

from tokenyard.state import SharedState, StateUnavailable, Subscription
from tokenyard.state.subscribe import subscribe_when_up

log = logging.getLogger("tokenyard.scaleout")
DRAIN_CHANNEL = "backend-drain"
RESYNC_S = 5.0


def drain_key(name: str) -> str:
    """The shared key that, while it exists, drains endpoint ``name`` on every process."""
    return f"backend-drain:{name}"


class DrainSync:
    """Keeps this process's drained endpoints equal to the shared ones (see the module docstring).

    ``apply(name, drained)`` changes the local router (``Router.drain``); ``names`` are this process's endpoint
    names, the only keys it reads.
    """

    def __init__(self, state: SharedState, apply: Callable[[str, bool], bool], names: Iterable[str],
                 resync_s: float = RESYNC_S) -> None:
        self._state = state
        self._apply = apply
        self._names = sorted(set(names))
        self.resync_s = resync_s
        self._lock = asyncio.Lock()
        self._applied: dict[str, bool] = {}  # what this process last applied per name (only changes are applied)
        self._tasks: list[asyncio.Task[None]] = []
        self.syncs = 0  # completed reads of the shared drains (tests wait on it)

    async def start(self) -> None:
        """Read the shared drains and listen for changes; with the state down, keep trying in the background
        (never fails: the gateway starts, its endpoints undrained until the state answers)."""
        sub: Subscription | None = None
        with contextlib.suppress(StateUnavailable):
            sub = await self._state.subscribe(DRAIN_CHANNEL)
            await self.sync()
        self._tasks.append(asyncio.create_task(self._listen(sub), name="tokenyard-backend-drain"))
        self._tasks.append(asyncio.create_task(self._resync_forever(), name="tokenyard-backend-drain-resync"))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    async def set(self, name: str, drained: bool) -> None:
        """Drain (or undrain) ``name`` on every process sharing the state. Raises ``StateUnavailable`` having
        changed nothing anywhere when the key could not be written."""
        if drained:
            await self._state.set(drain_key(name), b"1")
        else:
            await self._state.delete(drain_key(name))
        self._set_local(name, drained)  # this process at once; the others on the message (or their next resync)
        with contextlib.suppress(StateUnavailable):  # written: a lost message is made up by the resync
            await self._state.publish(DRAIN_CHANNEL, name.encode())

    async def sync(self) -> None:
        """Read every endpoint's key and apply it. Raises ``StateUnavailable`` (local state then unchanged for
        the endpoints not read yet)."""
        async with self._lock:  # a read started before a change must not be applied after a newer one
            for name in self._names:
                self._set_local(name, await self._state.get(drain_key(name)) is not None)
            self.syncs += 1

    def _set_local(self, name: str, drained: bool) -> None:
        # Applied only when it changes: an undrain, even a no-op, restarts the endpoint's health bookkeeping.
        if self._applied.get(name, False) != drained:
            self._applied[name] = drained
            self._apply(name, drained)

    async def _listen(self, sub: Subscription | None) -> None:
        if sub is None:
            sub = await subscribe_when_up(self._state, DRAIN_CHANNEL, log, "cross-replica backend drain")
        try:
            async for _ in sub:
                with contextlib.suppress(StateUnavailable):
                    await self.sync()
        finally:
            await sub.aclose()

    async def _resync_forever(self) -> None:
        while True:
            await asyncio.sleep(self.resync_s)
            try:
                await self.sync()
            except StateUnavailable:
                continue  # keep what this process knows until the state answers again
