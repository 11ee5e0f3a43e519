"""``tokenyard plan`` through the real CLI group."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from tokenyard.cli import cli
from tokenyard.plan.spec import builtin_names, load_plan

PLAN = """
classes: {standard: {ttft_p95_ms: 1500, itl_p95_ms: 100}}
workflows: {chat: {hops: [{model: m, prompt_tokens: 64, output_tokens: 16}]}}
forecast: {peak_actions_per_s: 10, months_ahead: 1, monthly_growth: 0.5, surge_multiplier: 1.5}
models: {m: {profile: large, overrides: {max_num_seqs: 4, ttft_ms: 60, itl_ms: 20, jitter: 0}}}
prices: {m: {replica_hour: 2}}
simulation: {duration_s: 20, min_requests: 200, warmup_s: 2}
"""


def test_table_and_json_file(tmp_path: Path) -> None:
    (tmp_path / "plan.yaml").write_text(PLAN)
    out = tmp_path / "plan.json"
    result = CliRunner().invoke(cli, ["plan", str(tmp_path / "plan.yaml"), "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "replicas surge" in result.output and "one fewer misses" in result.output
    data = json.loads(out.read_text())
    assert [m["month"] for m in data["months"]] == [0, 1]
    horizon = data["horizon"]["models"]["m"]
    assert horizon["replicas"] == horizon["replicas_surge"] >= horizon["replicas_peak"] >= 1
    assert horizon["tried"][str(horizon["replicas"])] is True
    assert horizon["tried"][str(horizon["replicas"] - 1)] is False


def test_json_to_stdout_and_horizon_only(tmp_path: Path) -> None:
    (tmp_path / "plan.yaml").write_text(PLAN)
    result = CliRunner().invoke(cli, ["plan", str(tmp_path / "plan.yaml"), "--json", "-", "--horizon-only"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert [m["month"] for m in data["months"]] == [1]


def test_bad_plan_exits_2_with_the_key(tmp_path: Path) -> None:
    (tmp_path / "plan.yaml").write_text(PLAN.replace("peak_actions_per_s: 10", "peak_actions_per_s: -1"))
    result = CliRunner().invoke(cli, ["plan", str(tmp_path / "plan.yaml")])
    assert result.exit_code == 2
    assert "forecast.peak_actions_per_s" in result.output
    result = CliRunner().invoke(cli, ["plan", str(tmp_path / "missing.yaml")])
    assert result.exit_code == 2 and "cannot read" in result.output


def test_shipped_example_parses() -> None:
    assert "example" in builtin_names()
    spec = load_plan("example")
    assert spec.forecast.months_ahead == 6 and "chat" in spec.backends
