"""Degradation ladder: hysteresis, dwell, class offsets, pin; and the request transforms."""

from __future__ import annotations

import random
from typing import Any

import pytest

from tokenyard.policy.degradation import (
    COMPRESS_RETRIEVAL,
    CONCISE,
    FALLBACK_MODEL,
    NARROW_TOOLS,
    DegradationLadder,
    DegradationSettings,
    cap_top_k,
    make_concise,
    narrow_tools,
    pressure,
    swap_model,
)

S = DegradationSettings(up_threshold=1.0, down_threshold=0.7, up_dwell_s=5.0, down_dwell_s=15.0)


def test_steps_up_one_level_per_dwell() -> None:
    ladder = DegradationLadder(S)
    levels = [ladder.update(2.0, now=float(t)) for t in range(0, 31)]
    assert levels[4] == 0 and levels[5] == 1 and levels[10] == 2 and levels[20] == 4 and levels[30] == 4


def test_steps_down_only_after_sustained_low_pressure() -> None:
    ladder = DegradationLadder(S)
    for t in range(0, 11):
        ladder.update(2.0, now=float(t))
    assert ladder.level == 2
    ladder.update(0.5, now=11.0)
    ladder.update(0.9, now=20.0)  # back between thresholds: resets the low timer
    ladder.update(0.5, now=21.0)
    ladder.update(0.5, now=35.0)
    assert ladder.level == 2  # low only since 21
    ladder.update(0.5, now=36.0)
    assert ladder.level == 1
    ladder.update(0.5, now=50.0)
    assert ladder.level == 1  # next step down needs another full dwell
    ladder.update(0.5, now=51.0)
    assert ladder.level == 0


def test_no_flapping_on_a_noisy_signal_at_the_threshold() -> None:
    """Pressure jittering around the up threshold moves the level monotonically up (never down), and a
    signal jittering around the down threshold never moves it up: changes are rare and one-directional."""
    rng = random.Random(7)
    ladder = DegradationLadder(S)
    changes = 0
    last = 0
    for i in range(600):  # 60 s at 100 ms
        level = ladder.update(1.0 + rng.uniform(-0.05, 0.05), now=i * 0.1)
        assert level >= last
        changes += level != last
        last = level
    assert changes <= 60 / S.up_dwell_s
    ladder = DegradationLadder(S)
    ladder.pin(None)
    ladder.level = 2
    for i in range(600):
        assert ladder.update(0.7 + rng.uniform(-0.05, 0.05), now=i * 0.1) <= 2
    assert ladder.level == 2  # never 15 s continuously below 0.7


def test_premium_lags_standard_and_classes_filter() -> None:
    ladder = DegradationLadder(DegradationSettings(classes=frozenset({"standard", "premium"})))
    ladder.pin(2)
    assert ladder.level_for("standard") == 2
    assert ladder.level_for("premium") == 1
    assert ladder.level_for("batch") == 0
    assert ladder.actions_for("standard") == (COMPRESS_RETRIEVAL, NARROW_TOOLS)
    assert ladder.actions_for("premium") == (COMPRESS_RETRIEVAL,)


def test_pin_overrides_and_enabled_actions() -> None:
    ladder = DegradationLadder(DegradationSettings(enabled_actions=frozenset({CONCISE, FALLBACK_MODEL})))
    ladder.pin(4)
    assert ladder.actions_for("standard") == (CONCISE, FALLBACK_MODEL)
    ladder.pin(None)
    assert ladder.actions_for("standard") == ()
    with pytest.raises(ValueError):
        ladder.pin(5)


@pytest.mark.parametrize(
    ("ttft", "wait", "sat", "expected"), [(0.5, 0.0, 0.0, 0.5), (0.1, 2.0, 0.0, 2.0), (0.0, 0.0, 1.3, 1.3)]
)
def test_pressure(ttft: float, wait: float, sat: float, expected: float) -> None:
    assert pressure(ttft_ratio=ttft, queue_wait_s=wait, saturation=sat, settings=S) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("body", "changed", "top_k"),
    [({"query": "q", "top_k": 20}, True, 3), ({"query": "q", "top_k": 2}, False, 2), ({"query": "q"}, True, 3)],
)
def test_cap_top_k(body: dict[str, Any], changed: bool, top_k: int) -> None:
    assert cap_top_k(body, 3) is changed
    assert body["top_k"] == top_k


def tool(name: str) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name, "parameters": {}}}


def test_narrow_tools() -> None:
    body: dict[str, Any] = {"tools": [tool("a"), tool("b"), tool("c")], "parallel_tool_calls": True,
                            "tool_choice": {"type": "function", "function": {"name": "b"}}}
    assert narrow_tools(body, 1)
    assert [t["function"]["name"] for t in body["tools"]] == ["b"]
    assert body["parallel_tool_calls"] is False
    assert not narrow_tools(body, 1)
    body2: dict[str, Any] = {"tools": [tool("a"), tool("b")], "tool_choice": "auto"}
    assert narrow_tools(body2, 0)
    assert "tools" not in body2 and "tool_choice" not in body2
    body3: dict[str, Any] = {"tools": [tool("a"), tool("b")]}
    assert narrow_tools(body3, 1) and body3["tools"] == [tool("a")]
    assert not narrow_tools({"messages": []}, 1)


def test_make_concise() -> None:
    body: dict[str, Any] = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2000}
    assert make_concise(body, 256, "Be brief.")
    assert body["max_tokens"] == 256
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}
    assert not make_concise(body, 256, "Be brief.")  # idempotent
    small: dict[str, Any] = {"prompt": "x", "max_tokens": 10}
    assert not make_concise(small, 256, "Be brief.")
    unset: dict[str, Any] = {"prompt": "x"}
    assert make_concise(unset, 256, "Be brief.") and unset["max_tokens"] == 256
    newer: dict[str, Any] = {"messages": [], "max_completion_tokens": 999}
    assert make_concise(newer, 100, "") and newer["max_completion_tokens"] == 100 and "max_tokens" not in newer


def test_swap_model() -> None:
    body: dict[str, Any] = {"model": "chat"}
    assert swap_model(body, "chat-small") and body["model"] == "chat-small"
    assert not swap_model(body, "chat-small")
    assert not swap_model(body, None)
