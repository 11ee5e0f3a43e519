"""WorkflowTracker: explicit end, idle expiry measured to the last hop, bounded size."""

from __future__ import annotations

import pytest

from tokenyard.traffic.workflows import FinishedWorkflow, WorkflowTracker


def test_explicit_end_waits_for_hops_in_flight() -> None:
    tracker = WorkflowTracker(idle_s=10.0)
    tracker.hop_started("w", "agent", 0.0)
    tracker.hop_started("w", "agent", 1.0)
    assert tracker.hop_ended("w", 2.0, end=True) is None  # another hop is still running
    assert tracker.hop_ended("w", 3.5, end=True) == FinishedWorkflow("w", "agent", 3.5)
    assert len(tracker) == 0


def test_idle_workflow_ends_at_its_last_hop() -> None:
    tracker = WorkflowTracker(idle_s=5.0)
    tracker.hop_started("w", "rag", 10.0)
    tracker.hop_ended("w", 11.0)
    tracker.hop_started("w", "rag", 12.0)
    assert tracker.expire(13.0) == []  # a hop is in flight
    tracker.hop_ended("w", 14.0)
    assert tracker.expire(18.9) == []
    assert tracker.expire(19.0) == [FinishedWorkflow("w", "rag", 4.0)]


def test_oldest_is_ended_when_full_and_bad_settings_are_refused() -> None:
    tracker = WorkflowTracker(idle_s=5.0, max_open=2)
    tracker.hop_started("a", "x", 0.0)
    tracker.hop_started("b", "x", 1.0)
    assert [f.workflow_id for f in tracker.hop_started("c", "x", 2.0)] == ["a"]
    assert tracker.hop_ended("unknown", 3.0) is None
    with pytest.raises(ValueError):
        WorkflowTracker(idle_s=0)
