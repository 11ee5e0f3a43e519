"""Self-contained HTML pages: the run report and the side-by-side comparison (images inlined as base64)."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Any

STYLE = """body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}th{background:#f3f3f3}td:first-child{text-align:left}
img{max-width:100%;display:block;margin:1em 0}.better{color:#080}.worse{color:#b00}"""
LATENCY_COLUMNS = ("ttft_ms", "itl_ms", "e2e_ms")


def fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 10 else f"{value:.3g}"
    return escape(str(value))


def class_rows(summary: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [*sorted(summary["classes"].items()), ("TOTAL", summary["totals"])]


def render_report(summary: dict[str, Any], images: Sequence[Path]) -> str:
    head = ["class", "requests", "completed", "aborted", "shed", "rate limited", "errors", "interrupted"]
    for col in LATENCY_COLUMNS:
        head += [f"{col} p50", f"{col} p95", f"{col} p99"]
    head += ["goodput rps", "SLO met"]
    rows = []
    for name, block in class_rows(summary):
        cells = [name, block["requests"], block["completed"], block["client_aborted"], block["shed"],
                 block["rate_limited"], block["errors"], block.get("upstream_interrupted")]
        for col in LATENCY_COLUMNS:
            cells += [block[col]["p50"], block[col]["p95"], block[col]["p99"]]
        cells += [block["goodput_rps"], block.get("slo_attainment")]
        rows.append("<tr>" + "".join(f"<td>{fmt(c)}</td>" for c in cells) + "</tr>")
    flows = "".join(
        f"<tr><td>{escape(name)}</td><td>{fmt(w['kind'])}</td><td>{w['actions']}</td><td>{w['completed']}</td>"
        f"<td>{fmt(w['latency_ms']['p50'])}</td><td>{fmt(w['latency_ms']['p95'])}</td>"
        f"<td>{fmt(w['latency_ms']['p99'])}</td></tr>"
        for name, w in summary.get("workflows", {}).items())
    tokens = summary["tokens"]
    imgs = "".join(
        f'<img alt="{escape(p.stem)}" src="data:image/png;base64,{base64.b64encode(p.read_bytes()).decode()}">'
        for p in images)
    retrieval = summary.get("retrieval", {})
    lag = summary.get("send_lag_ms", {})
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>tokenyard bench: {escape(summary['workload'])}
</title><style>{STYLE}</style></head><body>
<h1>tokenyard bench report</h1>
<p>target <code>{escape(summary['target'])}</code>, model <code>{escape(str(summary.get('model') or '-'))}</code>,
workload <b>{escape(summary['workload'])}</b> ({escape(str(summary.get('mode', '')))} loop),
{fmt(summary['duration_s'])} s</p>
<h2>Per class</h2><table><tr>{''.join(f'<th>{h}</th>' for h in head)}</tr>{''.join(rows)}</table>
<p>Tokens: prompt {tokens['prompt']}, completion delivered {tokens['completion_delivered']}
({fmt(tokens.get('completion_tokens_per_s'))} tokens/s). Retrieval fallback ratio:
{fmt(retrieval.get('fallback_ratio'))} of {retrieval.get('calls', 0)} calls. Send lag p99: {fmt(lag.get('p99'))} ms.</p>
<h2>Workflows</h2><table><tr><th>workflow</th><th>kind</th><th>actions</th><th>completed</th>
<th>latency p50 ms</th><th>p95</th><th>p99</th></tr>{flows}</table>
<h2>Plots</h2>{imgs}
</body></html>
"""


def render_compare(rows: Sequence[Sequence[str]], header: Sequence[str], names: tuple[str, str]) -> str:
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>tokenyard bench compare</title>
<style>{STYLE}</style></head><body><h1>tokenyard bench: A vs B</h1>
<p>A = <code>{escape(names[0])}</code>, B = <code>{escape(names[1])}</code></p>
<table><tr>{''.join(f'<th>{escape(h)}</th>' for h in header)}</tr>{body}</table></body></html>
"""
