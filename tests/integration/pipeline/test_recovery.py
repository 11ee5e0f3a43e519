"""kill -9 a worker process mid-run: its pending events are claimed by the survivor; no event is lost and none
is duplicated in the sink (real redis-server, two `tokenyard pipeline run` processes)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import yaml

from tests.conftest import RedisServer
from tests.integration.pipeline.helpers import produce, results, wait_until
from tokenyard.pipeline.eventlog import open_event_log
from tokenyard.pipeline.logs import lag
from tokenyard.sim.testing import running_sim

EVENTS = 300


async def _start_worker(path: Path, consumer: str) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tokenyard", "pipeline", "run", str(path), "--consumer", consumer,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 30)
    assert b"tokenyard pipeline" in line, line
    return proc


async def _stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 15)
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def test_kill_9_mid_run_loses_nothing_and_duplicates_nothing(redis_server: RedisServer,
                                                                   tmp_path: Path) -> None:
    async with running_sim("fast", seed=7, ttft_ms=20.0, itl_ms=10.0) as sim:
        doc = {
            "name": "recovery", "log": redis_server.url,
            "source": {"stream": "events", "group": "g"},
            "transforms": [{"template": {"text": "Summarize: {text}"}}],
            "inference": {"model": "sim-fast", "upstream": sim.base_url + "/v1", "max_tokens": 5},
            "sinks": [{"stream": {"stream": "results"}}],
            "delivery": {"max_attempts": 5, "claim_idle_ms": 500},
            "worker": {"max_inflight": 16, "block_ms": 100, "claim_every_ms": 200},
        }
        path = tmp_path / "pipeline.yaml"
        path.write_text(yaml.safe_dump(doc))
        log = open_event_log(redis_server.url)
        victim = survivor = None
        try:
            await produce(log, EVENTS)
            victim = await _start_worker(path, "victim")
            survivor = await _start_worker(path, "survivor")

            async def some_done() -> bool:
                return await log.length("results") >= EVENTS // 5
            await wait_until(some_done, timeout=30)
            os.kill(victim.pid, signal.SIGKILL)
            await victim.wait()
            orphaned = await log.pending("events", "g", consumer="victim")
            assert orphaned, "the victim held no pending events when it died; the test proves nothing"

            async def all_done() -> bool:
                return await lag(log, "events", "g") == 0
            await wait_until(all_done, timeout=40)
            found = await results(log)
            ids = [r.event_id for r in found]
            assert len(ids) == len(set(ids)) == EVENTS  # none lost, none duplicated
            assert {r.worker for r in found} == {"victim", "survivor"}
            assert any(r.attempts > 1 for r in found)  # the victim's events were redelivered
            assert await log.pending("events", "g") == []
        finally:
            for proc in (victim, survivor):
                if proc is not None:
                    await _stop(proc)
            await log.aclose()
