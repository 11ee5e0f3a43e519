"""Workload files and the action plan: mixes, shared prefixes, abandonment, workflows, parse errors."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from tokenyard.bench.errors import WorkloadError
from tokenyard.bench.plan import Generation, Retrieval, ToolCall, plan_action, shared_prefixes
from tokenyard.bench.workload import builtin_names, load_workload, parse_workload

N = 4000


def test_every_builtin_loads() -> None:
    names = builtin_names()
    assert {"chat", "rag", "agent", "surge"} <= set(names)
    for name in names:
        assert load_workload(name).name == name


def test_unknown_workload_lists_the_builtins() -> None:
    with pytest.raises(WorkloadError, match="built-ins: agent"):
        load_workload("no-such-workload")


def test_class_and_tenant_mix_follow_weights() -> None:
    wl = parse_workload({
        "classes": {"premium": {"weight": 1}, "standard": {"weight": 3}},
        "tenants": {"acme": {"weight": 1, "api_key": "k1"}, "beta": {"weight": 4, "api_key": "k2"}},
    })
    actions = [plan_action(wl, i) for i in range(N)]
    classes = Counter(a.cls for a in actions)
    tenants = Counter(a.tenant for a in actions)
    assert classes["premium"] / N == pytest.approx(0.25, abs=0.025)
    assert tenants["beta"] / N == pytest.approx(0.8, abs=0.025)
    assert wl.tenants[0].api_key == "k1"


def test_known_class_names_get_default_slos_and_files_override_them() -> None:
    wl = parse_workload({"classes": {"premium": {}, "standard": {"ttft_ms": 900}, "batch": {}, "gold": {}}})
    specs = {c.name: c for c in wl.classes}
    assert specs["premium"].ttft_ms == 500 and specs["premium"].itl_ms == 50
    assert specs["standard"].ttft_ms == 900
    assert specs["batch"].ttft_ms is None and specs["batch"].itl_ms is None
    assert specs["gold"].ttft_ms == 2000


def test_workflow_mix_and_steps() -> None:
    wl = parse_workload({
        "workflows": {
            "chat": {"weight": 2},
            "rag": {"weight": 1, "retrieval_url": "http://127.0.0.1:1", "context_tokens": 64},
            "agent": {"weight": 1, "steps": 2, "tool_url": "http://127.0.0.1:2", "tools": ["a", "b"]},
        },
    })
    actions = [plan_action(wl, i) for i in range(N)]
    kinds = Counter(a.kind for a in actions)
    assert kinds["chat"] / N == pytest.approx(0.5, abs=0.03)
    rag = next(a for a in actions if a.kind == "rag")
    assert [type(s) for s in rag.steps] == [Retrieval, Generation]
    assert isinstance(rag.steps[0], Retrieval) and len(rag.steps[0].context.split()) == 62
    agent = next(a for a in actions if a.kind == "agent")
    assert [type(s) for s in agent.steps] == [Generation, ToolCall, Generation, ToolCall, Generation]
    assert [s.tool for s in agent.steps if isinstance(s, ToolCall)] == ["a", "b"]
    assert len({a.workflow_id for a in actions}) == N


def test_rag_without_a_retrieval_service_only_lengthens_the_prompt() -> None:
    wl = parse_workload({"prompt_tokens": 10, "workflows": {"rag": {"context_tokens": 100}}})
    action = plan_action(wl, 0)
    assert len(action.steps) == 1 and isinstance(action.steps[0], Generation)
    assert action.steps[0].prompt_tokens == 110


def test_shared_prefix_share_count_and_length() -> None:
    wl = parse_workload({"prompt_tokens": 20, "shared_prefix": {"share": 0.3, "count": 3, "tokens": 50}})
    prefixes = shared_prefixes(wl)
    assert len(prefixes) == 3 and all(len(p.split()) == 50 for p in prefixes)
    gens = [s for i in range(N) for s in plan_action(wl, i, prefixes).steps if isinstance(s, Generation)]
    with_prefix = [g for g in gens if g.shared_prefix is not None]
    assert len(with_prefix) / N == pytest.approx(0.3, abs=0.025)
    assert {g.shared_prefix for g in with_prefix} == {0, 1, 2}
    for g in with_prefix[:20]:
        assert g.prompt.startswith(prefixes[g.shared_prefix or 0])
        assert g.prompt_tokens == 70
    # Unique parts really differ: no two prompts are equal.
    assert len({g.prompt for g in gens}) == len(gens)


def test_abandonment_probability_and_limits() -> None:
    wl = parse_workload({"abandonment": {"probability": 0.2, "after_ms": 1500, "after_tokens": 8}})
    gens = [plan_action(wl, i).steps[0] for i in range(N)]
    abandoning = [g for g in gens if isinstance(g, Generation) and g.abandon_after_ms is not None]
    assert len(abandoning) / N == pytest.approx(0.2, abs=0.02)
    assert all(g.abandon_after_ms == 1500 and g.abandon_after_tokens == 8 for g in abandoning)
    assert all(isinstance(g, Generation) and g.abandon_after_tokens is None for g in gens if g not in abandoning)


def test_plan_is_deterministic_per_seed_and_index() -> None:
    wl = load_workload("surge")
    assert plan_action(wl, 17) == plan_action(wl, 17)
    other = wl.with_overrides(seed=1)
    assert plan_action(other, 17) != plan_action(wl, 17)


def test_env_substitution_and_missing_variable(tmp_path: Path) -> None:
    path = tmp_path / "w.yaml"
    path.write_text("tenants:\n  acme: {api_key: '${ACME_KEY}'}\n")
    assert load_workload(path, env={"ACME_KEY": "sk-1"}).tenants[0].api_key == "sk-1"
    with pytest.raises(WorkloadError, match="ACME_KEY is not set") as info:
        load_workload(path, env={})
    assert info.value.key == "tenants.acme.api_key"


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"arrivals": {}}, "workload"),
        ({"classes": {"gold": {"weight": -1}}}, "classes.gold.weight"),
        ({"classes": {"gold": {"ttft": 5}}}, "classes.gold"),
        ({"workflows": {"chatty": {}}}, "workflows.chatty.kind"),
        ({"workflows": {"agent": {"tools": []}}}, "workflows.agent.tools"),
        ({"abandonment": {"probability": 0.5}}, "abandonment"),
        ({"abandonment": {"probability": 2, "after_ms": 5}}, "abandonment.probability"),
        ({"shared_prefix": {"share": 0.5, "tokens": 0}}, "shared_prefix.tokens"),
        ({"duration_s": 0}, "duration_s"),
        ({"concurrency": 1.5}, "concurrency"),
        ({"stream": "yes"}, "stream"),
        ({"prompt_tokens": {"dist": "uniform"}}, "prompt_tokens"),
    ],
)
def test_bad_workloads_name_the_key(data: dict[str, object], key: str) -> None:
    with pytest.raises(WorkloadError) as info:
        parse_workload(data)
    assert info.value.key == key


def test_invalid_yaml_is_a_workload_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("classes: [unclosed\n")
    with pytest.raises(WorkloadError, match="invalid YAML"):
        load_workload(path)
