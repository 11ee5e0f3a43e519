"""The JavaScript client example of docs/resume.md, run as written under Node through a chaos proxy that cuts every
connection: the answer arrives whole and is generated once."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from tests.integration.resume.helpers import KEY_A, body, resume_config
from tokenyard.chaos.faults import DirectionFaults, Faults
from tokenyard.chaos.proxy import ChaosProxy
from tokenyard.gateway.app import running_gateway
from tokenyard.sim.testing import running_sim

DOC = Path(__file__).resolve().parents[3] / "docs" / "resume.md"
NODE = shutil.which("node")

DRIVER = """
const [baseUrl, apiKey, bodyJson] = process.argv.slice(2);
let text = "";
streamWithResume(baseUrl, apiKey, JSON.parse(bodyJson), (piece) => { text += piece; }, 40)
  .then(() => { process.stdout.write(JSON.stringify({ text })); })
  .catch((err) => { process.stderr.write(String(err)); process.exit(1); });
"""


def script(tmp_path: Path) -> Path:
    blocks = re.findall(r"```javascript\n(.*?)```", DOC.read_text(), re.S)
    code = next(b for b in blocks if "async function streamWithResume" in b)
    path = tmp_path / "resume_example.mjs"
    path.write_text(code + DRIVER)  # the documented code, unchanged, plus a driver that prints the answer
    return path


async def answer(path: Path, cut: bool) -> tuple[str, int, int]:
    async with AsyncExitStack() as stack:
        sim = await stack.enter_async_context(running_sim(seed=3, itl_ms=10.0))
        gw = await stack.enter_async_context(running_gateway(resume_config([sim])))
        faults = Faults(down=DirectionFaults(close_after_bytes=1500)) if cut else Faults()
        proxy = await stack.enter_async_context(ChaosProxy("127.0.0.1", gw.port, faults))
        assert NODE is not None
        node = await asyncio.create_subprocess_exec(
            NODE, str(path), f"http://127.0.0.1:{proxy.port}", KEY_A, json.dumps(body(40, "same question")),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(node.communicate(), timeout=60)
        assert node.returncode == 0, err.decode()
        text = str(json.loads(out)["text"])
        return text, proxy.stats.closed_after_bytes, int((await sim.stats())["generated_tokens"])


@pytest.mark.skipif(NODE is None, reason="node is not installed (scripts/test installs nodejs when missing)")
async def test_the_documented_javascript_client_completes_a_cut_stream(tmp_path: Path) -> None:
    path = script(tmp_path)
    direct, no_cuts, _ = await answer(path, cut=False)
    whole, cuts, generated = await answer(path, cut=True)
    assert no_cuts == 0 and cuts >= 2  # it really was cut, more than once
    assert whole == direct and len(direct) > 0
    assert generated == 40  # and generated once
