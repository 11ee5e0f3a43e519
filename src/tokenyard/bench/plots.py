"""PNG plots of a run (matplotlib's Agg canvas: no display needed)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tokenyard.bench.records import RequestRecord

if TYPE_CHECKING:
    from tokenyard.bench.report import Report

BIN_S = 1.0  # time-series resolution


def write_plots(report: Report, out: Path) -> list[Path]:
    """Write ttft_cdf.png, latency_over_time.png and throughput_over_time.png; return their paths."""
    # The object-oriented API with the Agg canvas (no pyplot): no global figure registry, no display, and safe
    # to call from a worker thread while an event loop keeps serving.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    paths: list[Path] = []
    for name, draw in (("ttft_cdf.png", _ttft_cdf), ("latency_over_time.png", _latency_over_time),
                       ("throughput_over_time.png", _throughput_over_time)):
        fig = Figure(figsize=(8, 4.2), dpi=100)
        FigureCanvasAgg(fig)
        ax = fig.subplots()
        draw(ax, report.requests, report.duration_s)
        ax.grid(True, alpha=0.3)
        fig.tight_layout()
        fig.savefig(out / name)
        paths.append(out / name)
    return paths


def _by_class(requests: list[RequestRecord]) -> dict[str, list[RequestRecord]]:
    groups: dict[str, list[RequestRecord]] = {}
    for rec in requests:
        groups.setdefault(rec.cls, []).append(rec)
    return dict(sorted(groups.items()))


def _ttft_cdf(ax: Any, requests: list[RequestRecord], duration_s: float) -> None:
    drew = False
    for cls, recs in _by_class(requests).items():
        values = sorted(r.ttft_s * 1000 for r in recs if r.outcome == "completed" and r.ttft_s is not None)
        if values:
            # Start each curve at (first value, 0) so even a single request draws a visible step.
            ax.step([values[0], *values], [0.0, *((i + 1) / len(values) for i in range(len(values)))],
                    where="post", label=f"{cls} (n={len(values)})")
            drew = True
    ax.set_title("Time to first token, CDF per class (completed requests)")
    ax.set_xlabel("TTFT (ms)")
    ax.set_ylabel("fraction of requests")
    ax.set_ylim(0, 1.02)
    if drew:
        ax.legend(loc="lower right")


def _latency_over_time(ax: Any, requests: list[RequestRecord], duration_s: float) -> None:
    drew = False
    for cls, recs in _by_class(requests).items():
        points = [(r.intended_s, r.ttft_s * 1000) for r in recs if r.outcome == "completed" and r.ttft_s]
        if points:
            ax.scatter([p[0] for p in points], [p[1] for p in points], s=6, alpha=0.6, label=f"{cls} TTFT")
            drew = True
    ax.set_title("TTFT by intended send time")
    ax.set_xlabel("time since start (s)")
    ax.set_ylabel("TTFT (ms)")
    if drew:
        ax.legend(loc="upper left")


def _throughput_over_time(ax: Any, requests: list[RequestRecord], duration_s: float) -> None:
    bins = max(1, int(duration_s / BIN_S) + 1)
    xs = [i * BIN_S for i in range(bins)]

    def series(pick: Callable[[RequestRecord], bool]) -> list[float]:
        counts = [0.0] * bins
        for rec in requests:
            if pick(rec):
                counts[min(bins - 1, int(rec.end_s / BIN_S))] += 1 / BIN_S
        return counts

    ax.plot(xs, series(lambda r: r.outcome == "completed"), label="completed req/s")
    ax.plot(xs, series(lambda r: r.outcome in ("shed", "rate_limited")), label="shed + rate limited req/s")
    ax.plot(xs, series(lambda r: r.outcome in ("error", "upstream_interrupted")), label="failed req/s")
    tokens = [0.0] * bins
    for rec in requests:
        tokens[min(bins - 1, int(rec.end_s / BIN_S))] += rec.completion_tokens / BIN_S
    twin = ax.twinx()
    twin.plot(xs, tokens, color="grey", linestyle="--", label="output tokens/s")
    twin.set_ylabel("output tokens/s")
    ax.set_title("Throughput over time (by completion time)")
    ax.set_xlabel("time since start (s)")
    ax.set_ylabel("requests/s")
    ax.legend(loc="upper left")
    twin.legend(loc="upper right")
