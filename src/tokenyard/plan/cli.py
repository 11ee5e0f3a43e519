"""``tokenyard plan FILE``: print the capacity plan as a table (and write it as JSON with ``--json``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import NoReturn

import click
from rich.console import Console
from rich.table import Table

from tokenyard.files import unwritable
from tokenyard.plan.errors import PlanError
from tokenyard.plan.planner import Plan, make_plan
from tokenyard.plan.spec import load_plan


def render_table(plan: Plan) -> Table:
    """One row per month and model: load, replicas (peak / surge), tokens and cost."""
    table = Table(title="tokenyard capacity plan (replicas hold every class's p95 SLO in the simulation)")
    for header in ("month", "model", "peak req/s", "surge req/s", "replicas peak", "replicas surge",
                   "tokens/month", "cost/month"):
        table.add_column(header, justify="left" if header == "model" else "right", no_wrap=True)
    for month in plan.months:
        for name, m in month.models.items():
            table.add_row(str(month.traffic.month), name, f"{m.peak.rate:.3g}", f"{m.surge.rate:.3g}",
                          str(m.peak.replicas), str(m.surge.replicas), _si(m.tokens_per_month), f"{m.cost:,.2f}")
    return table


def _si(value: float) -> str:
    for unit, size in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= size:
            return f"{value / size:.3g}{unit}"
    return f"{value:.0f}"


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("plan_file")
@click.option("--json", "json_out", type=click.Path(dir_okay=False),
              help="Also write the full plan as JSON here ('-' for stdout, and no table).")
@click.option("--horizon-only", is_flag=True, help="Size only the last month of the forecast (faster).")
def command(plan_file: str, json_out: str | None, horizon_only: bool) -> None:
    """Replicas, tokens and cost per model to hold each class's SLO (see docs/planning.md).

    PLAN_FILE is a plan YAML file, or `example` for the shipped example.
    """
    if json_out is not None and json_out != "-":
        problem = unwritable(json_out)
        if problem is not None:  # found before the plan is computed, which can take a while
            _fail(f"--json: {problem}")
    try:
        plan = make_plan(load_plan(plan_file), horizon_only=horizon_only)
    except PlanError as exc:
        _fail(str(exc))
    data = plan.to_json()
    if json_out == "-":
        click.echo(json.dumps(data, indent=2))
        return
    console = Console()
    if not console.is_terminal:
        console = Console(width=120)  # a pipe or a file: do not squeeze the table into 80 columns
    console.print(render_table(plan))
    horizon = plan.horizon
    for name, m in horizon.models.items():
        if m.surge.at is not None:
            below = "; ".join(m.surge.below.violations({c.name: c for c in plan.spec.classes})) \
                if m.surge.below is not None else "n/a (1 replica)"
            click.echo(f"{name}: {m.replicas} replicas at month {horizon.traffic.month} surge "
                       f"({m.surge.rate:.3g} req/s); one fewer misses: {below}")
    click.echo(f"total cost at month {horizon.traffic.month}: {horizon.cost:,.2f} per month")
    if json_out:
        try:
            Path(json_out).write_text(json.dumps(data, indent=2), encoding="utf-8")
        except OSError as exc:
            _fail(f"--json: {json_out}: {exc.strerror or exc}")
        click.echo(f"plan written to {json_out}")


def _fail(message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(2)
