"""``tokenyard bench``: run a workload and write the report, or compare two reports."""

from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from tokenyard.bench.errors import WorkloadError
from tokenyard.bench.report import Report
from tokenyard.bench.workload import Workload, builtin_names, load_workload


def simple_workload(*, rate: float | None, concurrency: int | None, requests: int | None,
                    prompt_tokens: int | None, output_tokens: int | None, stream: bool | None) -> Workload:
    """The workload the vLLM-style flags describe: one class, one tenant, constant lengths, chat turns."""
    from tokenyard.bench.arrivals import Arrivals
    from tokenyard.bench.distributions import constant

    base = Workload(name="simple")
    if rate is None and concurrency is None:
        concurrency = 1
    return base.with_overrides(
        # A request count is the bound people give vLLM's bench: then allow an hour instead of a minute.
        duration_s=3600.0 if requests is not None else None,
        arrival=Arrivals(kind="poisson", rate=rate) if rate is not None else None,
        concurrency=concurrency,
        max_requests=requests if requests is not None else base.max_requests,
        prompt_tokens=constant(prompt_tokens) if prompt_tokens is not None else None,
        output_tokens=constant(output_tokens) if output_tokens is not None else None,
        stream=stream,
    )


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--target", help="OpenAI-compatible base URL (with or without /v1).")
@click.option("--workload", "workload_ref", help=f"YAML file or built-in name ({', '.join(builtin_names())}).")
@click.option("--duration", type=click.FloatRange(min=0, min_open=True), help="Seconds to send for.")
@click.option("--out", type=click.Path(file_okay=False), help="Directory for report.json, plots, report.html.")
@click.option("--model", help="Model name to send (default: workload's, else the first of /v1/models).")
@click.option("--api-key", envvar="OPENAI_API_KEY", help="Bearer key for tenants without their own.")
@click.option("--concurrency", type=click.IntRange(min=1), help="Closed loop: N users in flight.")
@click.option("--rate", type=click.FloatRange(min=0, min_open=True), help="Open loop: Poisson arrivals, req/s.")
@click.option("--requests", "requests", type=click.IntRange(min=1), help="Stop after N user actions.")
@click.option("--prompt-tokens", type=click.IntRange(min=1), help="Prompt length (tokens, constant).")
@click.option("--output-tokens", type=click.IntRange(min=1), help="max_tokens per request (constant).")
@click.option("--stream/--no-stream", default=None, help="Streaming (default) or not.")
@click.option("--seed", type=int, help="Seed of every random choice (default: the workload's, else 0).")
@click.option("--no-progress", is_flag=True, help="No progress bar (also off when not a TTY or CI=true).")
@click.option("--compare", nargs=2, type=click.Path(exists=True), help="Compare two report dirs (or files).")
def command(target: str | None, workload_ref: str | None, duration: float | None, out: str | None,
            model: str | None, api_key: str | None, concurrency: int | None, rate: float | None,
            requests: int | None, prompt_tokens: int | None, output_tokens: int | None, stream: bool | None,
            seed: int | None, no_progress: bool, compare: tuple[str, str] | None) -> None:
    """Workload generator and SLO report (see docs/bench.md)."""
    if compare:
        _compare(compare, out)
        return
    if not target:
        raise click.UsageError("--target URL is required (or use --compare DIR_A DIR_B)")
    if out is not None:
        _prepare_out(out)  # before the run: a report that cannot be written would waste it
    if concurrency is not None and rate is not None:
        raise click.UsageError("--concurrency (closed loop) and --rate (open loop) exclude each other")
    try:
        if workload_ref:
            wl = load_workload(workload_ref)
            wl = wl.with_overrides(stream=stream, max_requests=requests)
            if rate is not None:  # --rate turns the workload into an open loop at that base rate
                wl = replace(wl, arrival=replace(wl.arrival, rate=rate), concurrency=None)
            if prompt_tokens is not None or output_tokens is not None:
                raise click.UsageError("--prompt-tokens/--output-tokens describe a simple load: "
                                       "set lengths in the workload file instead")
        else:
            wl = simple_workload(rate=rate, concurrency=concurrency, requests=requests,
                                 prompt_tokens=prompt_tokens, output_tokens=output_tokens, stream=stream)
        from tokenyard.bench.api import run_workload
        from tokenyard.runtime import run, wait_for_shutdown

        async def main() -> Report:
            # SIGINT/SIGTERM end the run early; the report of what was measured is still written.
            stop = asyncio.Event()
            watcher = asyncio.create_task(wait_for_shutdown(None))
            watcher.add_done_callback(lambda _: stop.set())
            try:
                return await run_workload(target, wl, duration_s=duration, out_dir=out,
                                          progress=not no_progress, concurrency=concurrency, model=model,
                                          api_key=api_key, seed=seed, stop=stop)
            finally:
                watcher.cancel()

        report = run(main())
    except WorkloadError as exc:
        raise click.ClickException(str(exc)) from exc
    print_summary(report.summary)
    if out:
        click.echo(f"report written to {Path(out) / 'report.html'}")


def print_summary(summary: dict[str, Any]) -> None:
    from tokenyard.bench.html import class_rows, fmt

    table = Table(title=f"{summary['workload']} against {summary['target']} ({summary['duration_s']} s)")
    for col in ("class", "req", "ok", "aborted", "shed", "rl", "err", "TTFT p50", "TTFT p95", "TTFT p99",
                "ITL p95", "e2e p95", "goodput/s"):
        table.add_column(col, justify="left" if col == "class" else "right")
    for name, b in class_rows(summary):
        table.add_row(name, *(fmt(b[k]) for k in ("requests", "completed", "client_aborted", "shed",
                                                  "rate_limited", "errors")),
                      fmt(b["ttft_ms"]["p50"]), fmt(b["ttft_ms"]["p95"]), fmt(b["ttft_ms"]["p99"]),
                      fmt(b["itl_ms"]["p95"]), fmt(b["e2e_ms"]["p95"]), fmt(b["goodput_rps"]))
    _console().print(table)


def _console() -> Console:
    # Piped output (CI logs, tests) gets a wide table instead of rich's 80-column squeeze.
    return Console() if sys.stdout.isatty() else Console(width=200)


def _compare(paths: tuple[str, str], out: str | None) -> None:
    from tokenyard.bench.compare import HEADER, compare_rows
    from tokenyard.bench.html import render_compare
    from tokenyard.bench.report import load_summary

    try:
        a, b = load_summary(paths[0]), load_summary(paths[1])
    except (OSError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    rows = compare_rows(a, b)
    table = Table(title=f"A = {paths[0]}  vs  B = {paths[1]}")
    for col in HEADER:
        table.add_column(col, justify="left" if col in ("class", "metric") else "right")
    for row in rows:
        table.add_row(*row)
    _console().print(table)
    out_dir = Path(out or ".")
    _prepare_out(str(out_dir))
    (out_dir / "compare.html").write_text(render_compare(rows, HEADER, paths))
    click.echo(f"comparison written to {out_dir / 'compare.html'}")


def _prepare_out(out: str) -> None:
    """Create the ``--out`` directory (the report goes there anyway) or exit 2 with one line saying why not."""
    try:
        Path(out).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        problem = exc.strerror or str(exc)
    else:
        if os.access(out, os.W_OK):
            return
        problem = "permission denied"
    click.echo(f"error: --out: {out}: {problem}", err=True)
    sys.exit(2)
