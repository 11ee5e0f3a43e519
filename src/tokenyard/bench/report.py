"""The run report: the CONTRACTS ``report.json`` document and the files written beside it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tokenyard.bench.metrics import distribution_ms, retrieval_summary, summarize_requests, summarize_workflows
from tokenyard.bench.records import RequestRecord, WorkflowRecord
from tokenyard.bench.workload import ClassSpec, Workload

# The keys CONTRACTS.md promises in every class block and in totals; more keys may follow them.
CLASS_KEYS = ("requests", "completed", "client_aborted", "shed", "rate_limited", "errors", "ttft_ms", "itl_ms",
              "e2e_ms", "goodput_rps")
TOP_KEYS = ("target", "workload", "duration_s", "classes", "totals", "tokens")


@dataclass
class Report:
    """What a run measured, with the maths applied. ``summary`` is the report.json document."""

    target: str
    workload: Workload
    mode: str
    duration_s: float
    started_at: float
    model: str = ""
    requests: list[RequestRecord] = field(default_factory=list)
    workflows: list[WorkflowRecord] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def build(cls, target: str, workload: Workload, mode: str, duration_s: float, started_at: float,
              requests: list[RequestRecord], workflows: list[WorkflowRecord], model: str = "") -> Report:
        report = cls(target=target, workload=workload, mode=mode, duration_s=duration_s, started_at=started_at,
                     model=model, requests=requests, workflows=workflows)
        report.summary = build_summary(report)
        return report

    def to_json(self) -> str:
        """The report.json document (CONTRACTS.md's keys first, extras after)."""
        return json.dumps(self.summary, indent=2)

    def write(self, out_dir: str | Path) -> list[Path]:
        """Write report.json, requests.jsonl, the PNG plots and report.html into ``out_dir``; return the paths."""
        from tokenyard.bench.html import render_report  # matplotlib only when files are wanted
        from tokenyard.bench.plots import write_plots

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        written = [out / "report.json", out / "requests.jsonl"]
        written[0].write_text(self.to_json() + "\n")
        with written[1].open("w") as fh:
            for rec in self.requests:
                fh.write(json.dumps(rec.to_dict()) + "\n")
        plots = write_plots(self, out)
        html = out / "report.html"
        html.write_text(render_report(self.summary, plots))
        return [*written, *plots, html]


def class_specs(report: Report) -> dict[str, ClassSpec]:
    specs = {spec.name: spec for spec in report.workload.classes}
    for rec in report.requests:
        specs.setdefault(rec.cls, report.workload.class_spec(rec.cls))
    return specs


def build_summary(report: Report) -> dict[str, Any]:
    specs = class_specs(report)
    duration = report.duration_s
    classes = {
        name: summarize_requests([r for r in report.requests if r.cls == name], spec, duration)
        for name, spec in specs.items()
    }
    totals = summarize_requests(report.requests, None, duration, specs)
    prompt = sum(r.prompt_tokens for r in report.requests if r.status == 200)
    delivered = sum(r.completion_tokens for r in report.requests)
    lags = [max(0.0, r.sent_s - r.intended_s) for r in report.requests]
    return {
        "target": report.target,
        "workload": report.workload.name,
        "duration_s": round(duration, 3),
        "classes": classes,
        "totals": totals,
        "tokens": {
            "prompt": prompt,
            "completion_delivered": delivered,
            "completion_tokens_per_s": round(delivered / duration, 3) if duration > 0 else 0.0,
            "total_tokens_per_s": round((prompt + delivered) / duration, 3) if duration > 0 else 0.0,
        },
        "mode": report.mode,
        "started_at": report.started_at,
        "model": report.model,
        "send_lag_ms": distribution_ms(lags),
        "workflows": summarize_workflows(report.workflows),
        "retrieval": retrieval_summary(report.workflows),
        "tenants": _tenant_counts(report.requests),
    }


def _tenant_counts(requests: list[RequestRecord]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for rec in requests:
        row = out.setdefault(rec.tenant, {"requests": 0, "completed": 0})
        row["requests"] += 1
        row["completed"] += rec.outcome == "completed"
    return out


def load_summary(path: str | Path) -> dict[str, Any]:
    """Read a report.json (or the report.json inside a directory)."""
    p = Path(path)
    if p.is_dir():
        p = p / "report.json"
    data = json.loads(p.read_text())
    if not isinstance(data, dict) or any(k not in data for k in TOP_KEYS):
        raise ValueError(f"{p} is not a tokenyard bench report")
    return data
