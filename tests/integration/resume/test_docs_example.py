"""The Python client example of docs/resume.md, run as written through a chaos proxy that cuts every connection."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from tests.integration.resume.helpers import KEY_A, body, resume_config
from tokenyard.chaos.faults import DirectionFaults, Faults
from tokenyard.chaos.proxy import ChaosProxy
from tokenyard.gateway.app import running_gateway
from tokenyard.sim.testing import running_sim

DOC = Path(__file__).resolve().parents[3] / "docs" / "resume.md"


def example() -> Callable[..., Awaitable[str]]:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    code = next(b for b in blocks if "async def stream_with_resume" in b)
    namespace: dict[str, Any] = {}
    exec(compile(code, str(DOC), "exec"), namespace)  # the documented code, unchanged
    function: Callable[..., Awaitable[str]] = namespace["stream_with_resume"]
    return function


async def answer(cut: bool) -> tuple[str, int, int]:
    """The example's answer (a fresh simulator with the same seed each time), the cuts, the tokens generated."""
    stream_with_resume = example()
    async with AsyncExitStack() as stack:
        sim = await stack.enter_async_context(running_sim(seed=3, itl_ms=10.0))
        gw = await stack.enter_async_context(running_gateway(resume_config([sim])))
        faults = Faults(down=DirectionFaults(close_after_bytes=1500)) if cut else Faults()
        proxy = await stack.enter_async_context(ChaosProxy("127.0.0.1", gw.port, faults))
        text = await stream_with_resume(f"http://127.0.0.1:{proxy.port}", KEY_A, body(40, "same question"),
                                        max_reconnects=40)
        return text, proxy.stats.closed_after_bytes, int((await sim.stats())["generated_tokens"])


async def test_the_documented_python_client_completes_a_cut_stream() -> None:
    direct, no_cuts, _ = await answer(cut=False)
    whole, cuts, generated = await answer(cut=True)
    assert no_cuts == 0 and cuts >= 2  # it really was cut, more than once
    assert whole == direct and len(direct) > 0
    assert generated == 40  # and generated once
