"""The load runner: open loop (arrivals on a schedule) or closed loop (N users), bounded in count and time.

Open loop sends each action at its intended time whatever the target does, and measures latency from that
intended time, so a slow target cannot slow the load down and hide its own latency (coordinated omission).
Closed loop keeps ``concurrency`` actions in flight, each user sending again as soon as its last action ended.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field

import aiohttp

from tokenyard.bench.client import Target, call_retrieval, call_tool, send_generation
from tokenyard.bench.plan import Action, Generation, Retrieval, ToolCall, plan_action, shared_prefixes
from tokenyard.bench.progress import Progress
from tokenyard.bench.records import RequestRecord, WorkflowRecord
from tokenyard.bench.workload import Workload

DRAIN_LIMIT_S = 30.0  # after the send window, wait at most this long for requests still in flight


@dataclass
class RunResult:
    requests: list[RequestRecord] = field(default_factory=list)
    workflows: list[WorkflowRecord] = field(default_factory=list)
    started_at: float = 0.0  # Unix time of the start
    duration_s: float = 0.0
    mode: str = "open"


class Runner:
    """Runs one workload against one target with one ClientSession."""

    def __init__(self, target: Target, workload: Workload, api_keys: dict[str, str | None],
                 progress: Progress, stop: asyncio.Event | None = None) -> None:
        self.target = target
        self.stop = stop if stop is not None else asyncio.Event()
        self.workload = workload
        self.api_keys = api_keys
        self.progress = progress
        self.result = RunResult()
        self._prefixes = shared_prefixes(workload)
        self._t0 = 0.0

    def clock(self) -> float:
        return asyncio.get_running_loop().time() - self._t0

    async def run(self, session: aiohttp.ClientSession) -> RunResult:
        wl = self.workload
        self.result.started_at = time.time()
        self._t0 = asyncio.get_running_loop().time()
        if wl.concurrency is not None:
            self.result.mode = "closed"
            self.progress.start(wl.max_requests)
            workers = [asyncio.create_task(self._user(session)) for _ in range(wl.concurrency)]
            await self._drain(workers, wl.duration_s)
        else:
            offsets = wl.arrival.schedule(wl.duration_s, wl.max_requests, random.Random(f"{wl.seed}:arrivals"))
            self.progress.start(len(offsets))
            tasks: list[asyncio.Task[None]] = []
            for index, offset in enumerate(offsets):
                action = plan_action(wl, index, self._prefixes)  # before the wait, so it adds no send lag
                delay = offset - self.clock()
                if delay > 0 and await _event_within(self.stop, delay):
                    break
                if self.stop.is_set():
                    break
                tasks.append(asyncio.create_task(self._action(session, action, offset)))
            await self._drain(tasks, max(wl.duration_s - self.clock(), 0.0))
        self.result.duration_s = self.clock()
        self.progress.stop()
        return self.result

    async def _user(self, session: aiohttp.ClientSession) -> None:
        wl = self.workload
        while (self.clock() < wl.duration_s and len(self.result.workflows) < wl.max_requests
               and not self.stop.is_set()):
            index = len(self.result.workflows)
            await self._action(session, plan_action(wl, index, self._prefixes), self.clock())

    async def _drain(self, tasks: list[asyncio.Task[None]], window_s: float) -> None:
        """Wait for ``tasks`` up to the window plus the drain limit, or until stopped; cancel the rest (their
        records stay "unfinished"; cancellation closes their connections)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + window_s + min(self.workload.request_timeout_s, DRAIN_LIMIT_S)
        pending: set[asyncio.Task[None]] = set(tasks)
        stopper = asyncio.create_task(self.stop.wait())
        try:
            while pending and not self.stop.is_set() and loop.time() < deadline:
                done, _ = await asyncio.wait(pending | {stopper}, timeout=deadline - loop.time(),
                                             return_when=asyncio.FIRST_COMPLETED)
                pending -= done
        finally:
            stopper.cancel()
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)

    async def _action(self, session: aiohttp.ClientSession, action: Action, intended_s: float) -> None:
        flow = WorkflowRecord(action=action.index, workflow=action.workflow, kind=action.kind, cls=action.cls,
                              intended_s=intended_s)
        self.result.workflows.append(flow)
        headers = self._headers(action)
        step_start = intended_s
        context = ""
        fallback = False
        completed = True
        try:
            for hop, step in enumerate(action.steps):
                if isinstance(step, Retrieval):
                    hit = await call_retrieval(session, step, headers)
                    flow.retrieval = "hit" if hit else "fallback"
                    context, fallback = (step.context + "\n\n", False) if hit else ("", True)
                elif isinstance(step, ToolCall):
                    if not await call_tool(session, step, headers, self.target.request_timeout_s):
                        flow.tool_errors += 1
                elif isinstance(step, Generation):
                    rec = RequestRecord(action=action.index, hop=hop, workflow=action.workflow, cls=action.cls,
                                        tenant=action.tenant, intended_s=step_start, retrieval_fallback=fallback)
                    self.result.requests.append(rec)
                    request_id = f"bench-{self.workload.seed}-{action.index}.{hop}"
                    await send_generation(session, self.target, step, rec, {**headers, "x-request-id": request_id},
                                          self.clock, context)
                    last = hop == len(action.steps) - 1 or rec.outcome != "completed"
                    self.progress.update(rec.outcome, action_done=last)
                    if rec.outcome != "completed":
                        completed = False
                        break  # the user gave up or the answer failed: the action is over
                step_start = self.clock()  # the next hop is intended the moment this one ends
            flow.completed = completed and flow.tool_errors == 0
        finally:
            flow.end_s = self.clock()

    def _headers(self, action: Action) -> dict[str, str]:
        headers = {"x-tokenyard-workflow-id": action.workflow_id}
        if action.cls != "default":
            headers["x-tokenyard-class"] = action.cls
        deadline_ms = self.workload.class_spec(action.cls).deadline_ms
        if deadline_ms is not None:
            headers["x-tokenyard-deadline-ms"] = f"{deadline_ms:g}"
        key = self.api_keys.get(action.tenant)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers


async def _event_within(event: asyncio.Event, timeout_s: float) -> bool:
    """Sleep up to ``timeout_s``; True as soon as ``event`` is set."""
    try:
        await asyncio.wait_for(event.wait(), timeout_s)
    except TimeoutError:
        return False
    return True
