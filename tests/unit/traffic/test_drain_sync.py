"""DrainSync on the in-process state: a drain set through one process reaches another, only changes are applied,
and a process that starts later reads the drains already set."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from tokenyard.state import MemoryState
from tokenyard.traffic.drain_sync import DrainSync, drain_key


class Router:
    """Records what DrainSync applies (as ``Router.drain`` would)."""

    def __init__(self) -> None:
        self.drained: dict[str, bool] = {}
        self.calls: list[tuple[str, bool]] = []

    def drain(self, name: str, drained: bool) -> bool:
        self.calls.append((name, drained))
        self.drained[name] = drained
        return True


async def until(predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "not reached in time"
        await asyncio.sleep(0.01)


async def test_a_drain_reaches_the_other_process_and_a_late_starter() -> None:
    state = MemoryState()
    a, b = Router(), Router()
    one = DrainSync(state, a.drain, ["x", "y"], resync_s=60)
    two = DrainSync(state, b.drain, ["x", "y"], resync_s=60)
    await one.start()
    await two.start()
    try:
        assert a.calls == b.calls == []  # nothing drained: nothing applied
        await one.set("x", True)
        assert a.drained == {"x": True}
        await until(lambda: b.drained.get("x") is True)
        assert await state.get(drain_key("x")) == b"1"

        late = Router()
        three = DrainSync(state, late.drain, ["x", "y"], resync_s=60)
        await three.start()
        try:
            assert late.drained == {"x": True}
            await two.set("x", False)
            await until(lambda: a.drained["x"] is False and late.drained["x"] is False)
            assert await state.get(drain_key("x")) is None
        finally:
            await three.close()
        assert ("y", True) not in a.calls + b.calls  # only what changed was applied
    finally:
        await one.close()
        await two.close()
