"""``tokenyard bench --compare A B``: two reports side by side, per class and metric, with B's change."""

from __future__ import annotations

from typing import Any

# (label, path in a class block, lower is better)
METRICS: tuple[tuple[str, tuple[str, ...], bool], ...] = (
    ("requests", ("requests",), False),
    ("completed", ("completed",), False),
    ("shed", ("shed",), True),
    ("rate limited", ("rate_limited",), True),
    ("errors", ("errors",), True),
    ("interrupted", ("upstream_interrupted",), True),
    ("unfinished", ("unfinished",), True),
    ("TTFT p50 ms", ("ttft_ms", "p50"), True),
    ("TTFT p95 ms", ("ttft_ms", "p95"), True),
    ("TTFT p99 ms", ("ttft_ms", "p99"), True),
    ("ITL p95 ms", ("itl_ms", "p95"), True),
    ("e2e p95 ms", ("e2e_ms", "p95"), True),
    ("goodput rps", ("goodput_rps",), False),
    ("SLO attainment", ("slo_attainment",), False),
)
HEADER = ("class", "metric", "A", "B", "change")


def compare_rows(a: dict[str, Any], b: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """One row per (class, metric) over the classes of either report, then the totals."""
    names = sorted(set(a["classes"]) | set(b["classes"]))
    rows: list[tuple[str, str, str, str, str]] = []
    for name in [*names, "TOTAL"]:
        block_a = a["totals"] if name == "TOTAL" else a["classes"].get(name)
        block_b = b["totals"] if name == "TOTAL" else b["classes"].get(name)
        for label, path, lower_better in METRICS:
            va, vb = _get(block_a, path), _get(block_b, path)
            rows.append((name, label, _fmt(va), _fmt(vb), change(va, vb, lower_better)))
    return rows


def change(a: float | None, b: float | None, lower_is_better: bool) -> str:
    """B relative to A, e.g. "-12.5% better"; "" when either side is missing.

    From zero there is no percentage, but the change is still judged ("+12 from 0 worse" for errors that
    appeared): a metric that was 0 in A (errors, sheds, interruptions) is exactly where a regression shows.
    """
    if a is None or b is None:
        return ""
    if a == 0:
        if b == 0:
            return "0%"
        better = (b < 0) == lower_is_better
        return f"{_fmt(b) if b < 0 else '+' + _fmt(b)} from 0 {'better' if better else 'worse'}"
    pct = (b - a) / abs(a) * 100
    if abs(pct) < 0.05:
        return "0%"
    better = (pct < 0) == lower_is_better
    return f"{pct:+.1f}% {'better' if better else 'worse'}"


def _get(block: dict[str, Any] | None, path: tuple[str, ...]) -> float | None:
    value: Any = block
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if value == int(value) and abs(value) >= 1 else f"{value:,.2f}"
