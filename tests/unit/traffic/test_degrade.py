"""Degradation engine: signals drive the ladder, hysteresis holds, transforms show in the body."""

from __future__ import annotations

from typing import Any

from tokenyard.policy.degradation import (
    COMPRESS_RETRIEVAL,
    CONCISE,
    FALLBACK_MODEL,
    NARROW_TOOLS,
    TOP_K_HINT_HEADER,
    DegradationSettings,
)
from tokenyard.traffic.degrade import DegradeEngine, p95


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def engine(clock: Clock, changes: list[tuple[int, int]] | None = None) -> DegradeEngine:
    settings = DegradationSettings(up_dwell_s=5, down_dwell_s=10)
    return DegradeEngine(settings, ttft_slo_s={"standard": 2.0, "premium": 0.5}, window_s=10, clock=clock,
                         on_level_change=(lambda a, b: changes.append((a, b))) if changes is not None else None)


def chat() -> dict[str, Any]:
    tool = {"type": "function", "function": {"name": "a"}}
    return {"model": "chat", "max_tokens": 2000, "messages": [{"role": "user", "content": "hi"}],
            "tools": [tool, {"type": "function", "function": {"name": "b"}}]}


def test_p95() -> None:
    assert p95([]) == 0.0
    assert p95([float(i) for i in range(1, 101)]) == 95.0


def test_slow_ttft_raises_the_level_and_recovery_lowers_it() -> None:
    clock = Clock()
    changes: list[tuple[int, int]] = []
    eng = engine(clock, changes)
    for second in range(0, 21):
        clock.now = float(second)
        eng.observe_ttft("standard", 3.0)  # 1.5 x SLO
        eng.current_level("standard")
    assert eng.level == 4
    assert eng.current_level("premium") == 3  # premium lags by one
    for second in range(21, 80):
        clock.now = float(second)
        eng.observe_ttft("standard", 0.5)
        eng.current_level("standard")
    assert eng.level == 0
    assert changes[:4] == [(0, 1), (1, 2), (2, 3), (3, 4)]
    assert len(changes) == 8  # four up, four down: no flapping


def test_queue_wait_and_saturation_signals() -> None:
    clock = Clock()
    eng = engine(clock)
    eng.observe_queue_wait("standard", 3.0)
    eng.evaluate()
    assert eng.last_pressure == 3.0
    eng.observe_saturation(1.4)
    clock.now = 20.0  # the wait sample left the window
    eng.evaluate()
    assert eng.last_pressure == 1.4


def test_apply_each_level_visible_in_the_body() -> None:
    eng = engine(Clock())
    eng.pin(0)
    body = chat()
    assert eng.apply("standard", body, fallback_model="chat-small").actions == ()
    assert body == chat()
    eng.pin(1)
    r = eng.apply("standard", (b := chat()), fallback_model="chat-small")
    assert r.actions == () and r.headers == {TOP_K_HINT_HEADER: "3"} and b == chat()
    retrieval = {"query": "q", "top_k": 50}
    assert eng.apply("standard", retrieval, kind="retrieval").actions == (COMPRESS_RETRIEVAL,)
    assert retrieval["top_k"] == 3
    eng.pin(2)
    b = chat()
    assert eng.apply("standard", b).actions == (NARROW_TOOLS,)
    assert len(b["tools"]) == 1
    eng.pin(3)
    b = chat()
    assert eng.apply("standard", b).actions == (NARROW_TOOLS, CONCISE)
    assert b["max_tokens"] == 256 and b["messages"][0]["role"] == "system"
    eng.pin(4)
    b = chat()
    assert eng.apply("standard", b, fallback_model="chat-small").actions == (NARROW_TOOLS, CONCISE, FALLBACK_MODEL)
    assert b["model"] == "chat-small"
    b = chat()
    premium = eng.apply("premium", b, fallback_model="chat-small")
    assert premium.level == 3 and premium.actions == (NARROW_TOOLS, CONCISE) and b["max_tokens"] == 512
    eng.pin(None)
    assert eng.current_level("standard") == 0
