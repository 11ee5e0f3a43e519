"""The runner against a real loopback OpenAI-compatible streaming server: outcomes, timings, headers, bounds."""

from __future__ import annotations

import asyncio
import time

import pytest

from tokenyard.bench import run_workload
from tokenyard.bench.workload import parse_workload

from .fake_openai import FakeState, running_fake


async def eventually(predicate: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


async def test_open_loop_chat_completes_and_ttft_ignores_the_empty_first_chunk() -> None:
    state = FakeState(ttft_s=0.05, itl_s=0.002)
    wl = parse_workload({"arrival": {"kind": "constant", "rate": 20}, "output_tokens": 8, "prompt_tokens": 16})
    async with running_fake(state) as srv:
        report = await run_workload(srv.base_url + "/v1", wl, duration_s=0.5, max_requests=10)
    totals = report.summary["totals"]
    assert totals["requests"] == 10 and totals["completed"] == 10
    assert report.summary["model"] == "fake-model"  # discovered from /v1/models
    # The server sends an empty role chunk at once, then waits 50 ms: TTFT must include that wait.
    assert totals["ttft_ms"]["p50"] >= 50
    assert all(len(r.itls_s) == 7 and r.completion_tokens == 8 for r in report.requests)
    assert report.summary["tokens"]["completion_delivered"] == 80
    assert report.summary["tokens"]["prompt"] == 100  # the server's usage wins over the estimate
    assert report.mode == "open"
    intended = sorted(r.intended_s for r in report.requests)
    assert intended == pytest.approx([i * 0.05 for i in range(10)])


async def test_abandonment_after_k_tokens_really_disconnects() -> None:
    state = FakeState(ttft_s=0.01, itl_s=0.02)
    wl = parse_workload({"concurrency": 3, "output_tokens": 40,
                         "abandonment": {"probability": 1.0, "after_tokens": 3}})
    async with running_fake(state) as srv:
        report = await run_workload(srv.base_url, wl, duration_s=5, max_requests=6)
        await eventually(lambda: state.disconnects == 6)
    assert state.completed_streams == 0
    assert report.summary["totals"]["client_aborted"] == 6
    assert all(r.completion_tokens == 3 for r in report.requests)
    assert report.summary["tokens"]["completion_delivered"] == 18


async def test_abandonment_after_time_disconnects() -> None:
    state = FakeState(ttft_s=0.01, itl_s=0.05)
    wl = parse_workload({"concurrency": 2, "output_tokens": 100,
                         "abandonment": {"probability": 1.0, "after_ms": 200}})
    async with running_fake(state) as srv:
        report = await run_workload(srv.base_url, wl, duration_s=5, max_requests=2)
        await eventually(lambda: state.disconnects == 2)
    assert report.summary["totals"]["client_aborted"] == 2
    assert all(0 < r.completion_tokens < 100 for r in report.requests)


async def test_shed_rate_limited_and_interrupted_outcomes() -> None:
    state = FakeState(shed_every=4, rate_limit_every=5)
    wl = parse_workload({"concurrency": 1, "output_tokens": 4})
    async with running_fake(state) as srv:
        report = await run_workload(srv.base_url, wl, duration_s=10, max_requests=20)
        totals = report.summary["totals"]
        assert (totals["shed"], totals["rate_limited"]) == (5, 3)  # 4,8,..,20 shed; 5,10(,15) minus 20 -> 3
        assert totals["completed"] == 12
        assert totals["shed_rate"] == 0.25

        state.shed_every = state.rate_limit_every = 0
        state.cut_after = 2
        cut = await run_workload(srv.base_url, wl, duration_s=10, max_requests=3)
        assert cut.summary["totals"]["upstream_interrupted"] == 3
        assert cut.summary["totals"]["interruption_rate"] == 1.0
        state.cut_with_error_event = False  # the stream just ends, without [DONE]
        cut = await run_workload(srv.base_url, wl, duration_s=10, max_requests=2)
        assert cut.summary["totals"]["upstream_interrupted"] == 2
        assert all(r.completion_tokens == 2 for r in cut.requests)


async def test_closed_loop_sends_class_tenant_and_workflow_headers() -> None:
    state = FakeState(degraded_header="shorten_output")
    wl = parse_workload({
        "concurrency": 4, "output_tokens": 2,
        "classes": {"premium": {"weight": 1, "deadline_ms": 3000}, "standard": {"weight": 1}},
        "tenants": {"acme": {"api_key": "sk-acme"}, "beta": {}},
    })
    async with running_fake(state) as srv:
        report = await run_workload(srv.base_url, wl, duration_s=10, max_requests=30, api_key="sk-shared")
    assert report.mode == "closed" and report.summary["totals"]["requests"] == 30
    by_request = {h["X-Request-ID"]: h for h in state.headers}
    for rec in report.requests:
        headers = by_request[f"bench-0-{rec.action}.0"]
        assert headers["x-tokenyard-class"] == rec.cls
        assert headers["Authorization"] == ("Bearer sk-acme" if rec.tenant == "acme" else "Bearer sk-shared")
        assert headers["x-tokenyard-workflow-id"] == f"wf-0-{rec.action}"
        assert headers.get("x-tokenyard-deadline-ms") == ("3000" if rec.cls == "premium" else None)
        assert rec.degraded == "shorten_output"
    assert report.summary["totals"]["degraded"] == 30
    assert set(report.summary["classes"]) == {"premium", "standard"}
    assert set(report.summary["tenants"]) == {"acme", "beta"}


async def test_agent_and_rag_workflows() -> None:
    state = FakeState(retrieval_fails=True)
    async with running_fake(state) as srv:
        wl = parse_workload({
            "concurrency": 2, "output_tokens": 3,
            "workflows": {"agent": {"steps": 2, "tool_url": srv.base_url, "tools": ["search"], "weight": 1},
                          "rag": {"retrieval_url": srv.base_url, "weight": 1}},
        })
        report = await run_workload(srv.base_url, wl, duration_s=10, max_requests=8)
    flows = report.summary["workflows"]
    agent_actions = flows["agent"]["actions"]
    assert agent_actions + flows["rag"]["actions"] == 8
    assert state.tool_calls == 2 * agent_actions
    assert flows["agent"]["completed"] == agent_actions and flows["agent"]["latency_ms"]["p50"] is not None
    # Every agent action made 3 generations under one workflow id.
    agent_ids = [h["x-tokenyard-workflow-id"] for h in state.headers
                 if any(r.action == int(h["x-tokenyard-workflow-id"].split("-")[-1]) and r.workflow == "agent"
                        for r in report.requests)]
    assert len(agent_ids) == 3 * agent_actions
    retrieval = report.summary["retrieval"]
    assert retrieval["calls"] == flows["rag"]["actions"] == state.retrievals
    assert retrieval["fallback_ratio"] == 1.0
    assert all(r.retrieval_fallback for r in report.requests if r.workflow == "rag")


async def test_non_streaming_requests() -> None:
    async with running_fake(FakeState()) as srv:
        wl = parse_workload({"concurrency": 2, "stream": False, "output_tokens": 5})
        report = await run_workload(srv.base_url, wl, duration_s=10, max_requests=4, model="explicit")
    totals = report.summary["totals"]
    assert totals["completed"] == 4 and report.summary["tokens"]["completion_delivered"] == 20
    assert totals["ttft_ms"]["p50"] == totals["e2e_ms"]["p50"]
    assert report.summary["model"] == "explicit"


async def test_run_is_bounded_in_time_against_a_hanging_server() -> None:
    state = FakeState(ttft_s=60.0)  # never answers within the test
    wl = parse_workload({"arrival": {"kind": "constant", "rate": 10}, "request_timeout_s": 0.5})
    started = time.monotonic()
    async with running_fake(state) as srv:
        report = await run_workload(srv.base_url, wl, duration_s=0.3, max_requests=1000)
        await eventually(lambda: state.disconnects == 3)
    assert time.monotonic() - started < 20
    assert report.summary["totals"]["requests"] == 3
    assert report.summary["totals"]["errors"] == 3


async def test_unreachable_target_counts_errors() -> None:
    from tests.conftest import free_port

    wl = parse_workload({"concurrency": 1, "model": "m"})
    report = await run_workload(f"http://127.0.0.1:{free_port()}", wl, duration_s=10, max_requests=3)
    assert report.summary["totals"]["errors"] == 3
    assert report.requests[0].error is not None and "Connect" in report.requests[0].error
