"""Replay a range of the source stream into a new sink; the CLI's replay, control and lineage commands."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import aiohttp
import yaml

from tests.integration.pipeline.helpers import produce, spec_for, wait_until
from tokenyard.pipeline.eventlog import open_event_log
from tokenyard.pipeline.inference import InferenceStep, gateway_config_for
from tokenyard.pipeline.logs import lag
from tokenyard.pipeline.replay import replay
from tokenyard.pipeline.service import running_pipeline
from tokenyard.pipeline.sinks import build_sinks
from tokenyard.pipeline.spec import SinkSpec, StreamSinkSpec
from tokenyard.pipeline.transforms import build_transforms
from tokenyard.sim.testing import running_sim


async def test_replay_of_a_range_into_a_new_sink(log_url: str) -> None:
    async with running_sim("fast", seed=12) as sim:
        spec = spec_for(log_url, sim.base_url)
        log = open_event_log(log_url)
        try:
            ids = await produce(log, 10)
            async with running_pipeline(spec):
                async def done() -> bool:
                    return await lag(log, "events", "g") == 0 and await log.length("results") == 10
                await wait_until(done)
            inference = InferenceStep(spec.inference, gateway_config_for(spec.inference, Path.cwd()))
            await inference.start()
            async with aiohttp.ClientSession() as session:
                try:
                    sinks = build_sinks((SinkSpec(stream=StreamSinkSpec(stream="replayed")),), log_url, log, session)
                    args = (log, "events", ids[3], ids[6], build_transforms(spec.transforms, session), inference,
                            sinks)
                    report = await replay(*args)
                    again = await replay(*args)  # idempotent: nothing new in the sink
                    for sink in sinks:
                        await sink.close()
                finally:
                    await inference.close()
            assert report.read == 4 and report.outcomes == {"completed": 4} and not report.failed
            assert again.read == 4
            replayed = sorted(e.fields["event_id"] for e in await log.read_range("replayed"))
            assert replayed == ["e3", "e4", "e5", "e6"]
            assert await log.length("results") == 10  # the original sink is untouched
        finally:
            await log.aclose()


async def _cli(*args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "tokenyard", "pipeline", *args,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, (out + err).decode()


async def test_cli_replay_control_and_lineage(tmp_path: Path) -> None:
    log_url = f"sqlite://{tmp_path / 'log.db'}"
    async with running_sim("fast", seed=13) as sim:
        spec = spec_for(log_url, sim.base_url)
        doc = {"name": "test", "log": log_url, "source": {"stream": "events", "group": "g"},
               "transforms": [{"template": {"text": "{text}"}}],
               "inference": {"model": "sim-fast", "upstream": sim.base_url + "/v1", "max_tokens": 4}}
        path = tmp_path / "p.yaml"
        path.write_text(yaml.safe_dump(doc))
        log = open_event_log(log_url)
        try:
            await produce(log, 3)
            async with running_pipeline(spec):
                async def done() -> bool:
                    return await lag(log, "events", "g") == 0
                await wait_until(done)
            code, out = await _cli("lineage", str(path), "e1")
            assert code == 0 and json.loads(out)[0]["status"] == "completed"
            code, out = await _cli("lineage", str(path), "missing")
            assert code != 0 and "no lineage" in out
            code, out = await _cli("replay", str(path), "--sink-jsonl", str(tmp_path / "out.jsonl"))
            assert code == 0 and json.loads(out)["outcomes"] == {"completed": 3}
            assert len((tmp_path / "out.jsonl").read_text().splitlines()) == 3
            code, _ = await _cli("control", str(path), "abort", "--key", "k")
            assert code == 0
            control = await log.read_range("events:control")
            assert control[-1].fields["action"] == "abort" and control[-1].fields["key"] == "k"
            code, out = await _cli("control", str(path), "abort")
            assert code != 0
            bad = tmp_path / "bad.yaml"
            bad.write_text("name: x\n")
            code, out = await _cli("run", str(bad))
            assert code != 0 and "bad.yaml" in out
        finally:
            await log.aclose()
