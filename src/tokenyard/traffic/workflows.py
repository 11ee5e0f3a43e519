"""Tool-chain completion latency: group the hops of one user action by ``x-tokenyard-workflow-id``.

A workflow starts with its first hop and ends either at the end of a hop sent with ``x-tokenyard-workflow-end:
true``, or when no hop of it has been in flight for ``idle_s`` (its duration then runs to the end of its last
hop, not to the moment the idle gap was noticed). Pure: every method takes the time (``time.monotonic()``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class _Workflow:
    name: str
    started: float
    last_end: float
    open_hops: int = 0


@dataclass(frozen=True, slots=True)
class FinishedWorkflow:
    """A workflow that ended: its id, its name (the metric label) and its duration in seconds."""

    workflow_id: str
    name: str
    duration_s: float


class WorkflowTracker:
    """Open workflows by id; at most ``max_open`` are tracked (the oldest is ended early to make room)."""

    def __init__(self, idle_s: float = 30.0, max_open: int = 10_000) -> None:
        if idle_s <= 0 or max_open < 1:
            raise ValueError("idle_s must be > 0 and max_open >= 1")
        self.idle_s = idle_s
        self.max_open = max_open
        self._open: dict[str, _Workflow] = {}

    def __len__(self) -> int:
        return len(self._open)

    def hop_started(self, workflow_id: str, name: str, now: float) -> list[FinishedWorkflow]:
        """A hop of ``workflow_id`` begins; returns workflows ended to make room (normally none)."""
        flow = self._open.get(workflow_id)
        finished: list[FinishedWorkflow] = []
        if flow is None:
            if len(self._open) >= self.max_open:
                oldest = next(iter(self._open))
                finished.append(self._finish(oldest))
            flow = self._open[workflow_id] = _Workflow(name, now, now)
        flow.open_hops += 1
        return finished

    def hop_ended(self, workflow_id: str, now: float, end: bool = False) -> FinishedWorkflow | None:
        """A hop ended; with ``end`` (the explicit header) the workflow ends once no hop of it is in flight."""
        flow = self._open.get(workflow_id)
        if flow is None:
            return None
        flow.open_hops = max(0, flow.open_hops - 1)
        flow.last_end = max(flow.last_end, now)
        if end and flow.open_hops == 0:
            return self._finish(workflow_id)
        return None

    def expire(self, now: float) -> list[FinishedWorkflow]:
        """End every workflow idle (no hop in flight) for at least ``idle_s``."""
        idle = [wid for wid, flow in self._open.items() if flow.open_hops == 0 and now - flow.last_end >= self.idle_s]
        return [self._finish(wid) for wid in idle]

    def _finish(self, workflow_id: str) -> FinishedWorkflow:
        flow = self._open.pop(workflow_id)
        return FinishedWorkflow(workflow_id, flow.name, max(0.0, flow.last_end - flow.started))
