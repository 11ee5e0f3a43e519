"""report.json keeps CONTRACTS.md's keys; compare maths; SSE parsing and 429 classification."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from tokenyard.bench.compare import change, compare_rows
from tokenyard.bench.records import RequestRecord, WorkflowRecord
from tokenyard.bench.report import CLASS_KEYS, TOP_KEYS, Report
from tokenyard.bench.sse import StreamEvent, classify_status, iter_events
from tokenyard.bench.workload import parse_workload


def make_report() -> Report:
    wl = parse_workload({"classes": {"premium": {"weight": 1}, "standard": {"weight": 1}}})
    requests = [
        RequestRecord(action=0, hop=0, workflow="chat", cls="premium", tenant="t", intended_s=0.0, sent_s=0.001,
                      end_s=0.14, status=200, outcome="completed", ttft_s=0.1, itls_s=[0.02, 0.02], e2e_s=0.14,
                      prompt_tokens=12, completion_tokens=3),
        RequestRecord(action=1, hop=0, workflow="chat", cls="standard", tenant="t", intended_s=0.5, sent_s=0.5,
                      end_s=0.51, status=429, outcome="shed"),
    ]
    flows = [WorkflowRecord(action=0, workflow="chat", kind="chat", cls="premium", intended_s=0, end_s=0.3,
                            completed=True),
             WorkflowRecord(action=1, workflow="chat", kind="chat", cls="standard", intended_s=0.5, end_s=0.51)]
    return Report.build(target="http://127.0.0.1:1", workload=wl, mode="open", duration_s=1.0, started_at=0.0,
                        requests=requests, workflows=flows, model="m")


def test_report_json_has_every_contract_key() -> None:
    data = json.loads(make_report().to_json())
    for key in TOP_KEYS:
        assert key in data
    assert set(data["classes"]) == {"premium", "standard"}
    for block in [*data["classes"].values(), data["totals"]]:
        for key in CLASS_KEYS:
            assert key in block, key
        for dist in ("ttft_ms", "itl_ms", "e2e_ms"):
            assert set(block[dist]) >= {"p50", "p95", "p99"}
    assert set(data["tokens"]) >= {"prompt", "completion_delivered"}
    assert data["tokens"]["prompt"] == 12 and data["tokens"]["completion_delivered"] == 3
    assert data["totals"]["requests"] == 2 and data["totals"]["shed"] == 1
    assert data["classes"]["standard"]["ttft_ms"]["p50"] is None
    assert data["classes"]["premium"]["goodput_rps"] == 1.0
    assert data["workload"] == "custom" and data["duration_s"] == 1.0 and data["model"] == "m"


def test_compare_rows_and_change() -> None:
    a = json.loads(make_report().to_json())
    b = json.loads(make_report().to_json())
    b["classes"]["premium"]["ttft_ms"]["p95"] = a["classes"]["premium"]["ttft_ms"]["p95"] / 2
    rows = compare_rows(a, b)
    row = next(r for r in rows if r[0] == "premium" and r[1] == "TTFT p95 ms")
    assert row[4] == "-50.0% better"
    assert {r[0] for r in rows} == {"premium", "standard", "TOTAL"}
    assert change(10, 12, lower_is_better=False) == "+20.0% better"
    assert change(10, 12, lower_is_better=True) == "+20.0% worse"
    assert change(None, 1, True) == "" and change(0, 0, True) == "0%"


def test_compare_judges_a_change_from_zero() -> None:
    """Errors, sheds and interruptions that appear in B (0 in A) are the regressions compare exists for."""
    a = json.loads(make_report().to_json())
    b = json.loads(make_report().to_json())
    assert a["totals"]["errors"] == 0
    b["totals"]["errors"] = 7
    b["totals"]["upstream_interrupted"] = 2
    rows = {(r[0], r[1]): r for r in compare_rows(a, b)}
    assert rows[("TOTAL", "errors")][3:] == ("7", "+7 from 0 worse")
    assert rows[("TOTAL", "interrupted")][4] == "+2 from 0 worse"
    assert ("TOTAL", "SLO attainment") in rows and ("TOTAL", "rate limited") in rows
    assert change(0, 3, lower_is_better=False) == "+3 from 0 better"
    assert change(0, 0.5, lower_is_better=True) == "+0.50 from 0 worse"


async def lines(*raw: bytes) -> AsyncIterator[bytes]:
    for line in raw:
        yield line


async def collect(*raw: bytes) -> list[StreamEvent]:
    return [e async for e in iter_events(lines(*raw))]


async def test_sse_events_empty_first_chunk_usage_and_done() -> None:
    events = await collect(
        b": keep-alive\n", b"\n",
        b'data: {"choices": [{"delta": {"role": "assistant", "content": ""}}]}\n', b"\n",
        b"id: 1\n", b'data: {"choices": [{"delta": {"content": "Hi"}}]}\n', b"\n",
        b'data: {"choices": [{"text": " there"}]}\n', b"\n",
        b'data: {"choices": [], "usage": {"completion_tokens": 2}}\n', b"\n",
        b"data: [DONE]\n", b"\n",
    )
    assert [e.kind for e in events] == ["chunk", "chunk", "chunk", "chunk", "done"]
    assert [e.content for e in events[:3]] == ["", "Hi", " there"]
    assert events[3].usage == {"completion_tokens": 2}


async def test_sse_error_event_and_error_body() -> None:
    events = await collect(b"event: error\n", b'data: {"message": "x"}\n', b"\n",
                           b'data: {"error": {"message": "boom"}}\n')
    assert [e.kind for e in events] == ["error", "error"]


@pytest.mark.parametrize(
    ("status", "body", "outcome"),
    [
        (429, b'{"error": {"message": "m", "type": "overloaded", "code": "shed"}}', "shed"),
        (429, b'{"error": {"message": "m", "type": "requests", "code": "rate_limit_exceeded"}}', "rate_limited"),
        (429, b'{"error": {"message": "saturation", "type": "overloaded", "code": "queue_full"}}', "shed"),
        (429, b'{"error": {"message": "Rate limit reached", "type": "tokens", "code": null}}', "rate_limited"),
        (429, b"not json", "shed"),
        (503, b"{}", "error"),
        (400, b"{}", "error"),
    ],
)
def test_classify_status(status: int, body: bytes, outcome: str) -> None:
    assert classify_status(status, body) == outcome


def test_a_429_with_an_exhausted_ratelimit_header_is_rate_limited() -> None:
    assert classify_status(429, b"{}", {"x-ratelimit-remaining-tokens": "0"}) == "rate_limited"
    assert classify_status(429, b"{}", {"x-ratelimit-remaining-tokens": "10"}) == "shed"
