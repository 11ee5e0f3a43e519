"""Plan file parsing: errors name their key path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tokenyard.plan.errors import PlanError
from tokenyard.plan.spec import load_plan, parse_plan

BASE: dict[str, Any] = {
    "classes": {"standard": {"ttft_p95_ms": 2000, "itl_p95_ms": 100}},
    "workflows": {"chat": {"hops": [{"model": "chat"}]}},
    "forecast": {"peak_actions_per_s": 2},
    "models": {"chat": {"profile": "large", "overrides": {"max_num_seqs": 8}}},
    "prices": {"chat": {"replica_hour": 2.5, "per_million_tokens": 0.1}},
}


def with_(path: str, value: Any) -> dict[str, Any]:
    import copy

    data = copy.deepcopy(BASE)
    node = data
    keys = path.split(".")
    for key in keys[:-1]:
        node = node[key]
    node[keys[-1]] = value
    return data


def test_valid_plan_parses_with_defaults() -> None:
    spec = parse_plan(BASE)
    assert spec.forecast.months_ahead == 0 and spec.forecast.surge_multiplier == 1.0
    assert spec.workflows[0].hops[0].prompt_tokens.expected == 256
    assert spec.backends["chat"].overrides == {"max_num_seqs": 8}
    assert spec.prices["chat"].replica_hour == 2.5


@pytest.mark.parametrize(("path", "value", "key"), [
    ("forecast.monthly_actions", 1000, "forecast"),  # both given
    ("forecast.peak_to_mean", 0.5, "forecast.peak_to_mean"),
    ("forecast.surge_multiplier", 0.9, "forecast.surge_multiplier"),
    ("forecast.months_ahead", -1, "forecast.months_ahead"),
    ("forecast.bogus", 1, "forecast"),
    ("classes.standard.ttft_p95_ms", 0, "classes.standard.ttft_p95_ms"),
    ("workflows.chat.hops", [], "workflows.chat.hops"),
    ("workflows.chat.hops", [{"model": "nope"}], "workflows.chat.hops[0].model"),
    ("workflows.chat.hops", [{"model": "chat", "output_tokens": 0}], "workflows.chat.hops[0].output_tokens"),
    ("workflows.chat.class_mix", {"gold": 1}, "workflows.chat.class_mix.gold"),
    ("prices.other", {"replica_hour": 1}, "prices.other"),
    ("prices.chat", {"replica_hour": -1}, "prices.chat.replica_hour"),
    ("simulation", {"warmup_s": 100}, "simulation.warmup_s"),
])
def test_errors_name_the_key(path: str, value: Any, key: str) -> None:
    with pytest.raises(PlanError) as info:
        parse_plan(with_(path, value))
    assert info.value.key == key


def test_load_plan_resolves_bench_report_next_to_the_file(tmp_path: Path) -> None:
    (tmp_path / "plan.yaml").write_text(
        "classes: {standard: {ttft_p95_ms: 900}}\n"
        "workflows: {chat: {hops: [{model: chat}]}}\n"
        "forecast: {monthly_actions: 1000000}\n"
        "models: {chat: {bench_report: runs/report.json, bench_replicas: 2}}\n")
    spec = load_plan(tmp_path / "plan.yaml")
    assert spec.backends["chat"].bench_report == str(tmp_path / "runs" / "report.json")
    with pytest.raises(PlanError, match="not valid YAML"):
        (tmp_path / "bad.yaml").write_text("classes: [")
        load_plan(tmp_path / "bad.yaml")
