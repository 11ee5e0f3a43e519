"""``tokenyard demo``: the guided tour, on embedded defaults (no config file, nothing to install but tokenyard).

In this one process, on free loopback ports: a simulated fleet (three ``large`` simulators serving ``chat`` and
one smaller, faster one serving ``chat-small``, the degradation ladder's fallback), the gateway in front of them
with the dashboard, and a surge workload from the bench engine (three classes, a Poisson base rate that triples
for the middle third of the run, some impatient users who leave mid-answer). The fleet is deliberately small
(few batch slots per simulator) so that the surge overloads it and admission, shedding and degradation have
something to do. At the end the per-class SLO report is printed, with what the gateway did about the surge.
"""

from __future__ import annotations

import asyncio
import contextlib
from contextlib import AsyncExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from tokenyard import runtime
from tokenyard.config import GatewayConfig, parse_config
from tokenyard.gateway.app import running_gateway
from tokenyard.sim.testing import running_sim

if TYPE_CHECKING:
    from tokenyard.gateway.app import RunningGateway
    from tokenyard.gateway.services import Gateway

FLEET_SIZE = 3
SLOTS_PER_SIM = 6  # small on purpose: the surge must overload the fleet for admission to matter
SURGE_RUN_S = 45.0  # the workload's length when the demo runs until Ctrl-C


def demo_limits() -> dict[str, int]:
    """The admission limits the demo starts from: the simulators' batch size (see ``demo_config``)."""
    return {"initial_limit": SLOTS_PER_SIM, "min_limit": SLOTS_PER_SIM // 2,
            "max_limit": SLOTS_PER_SIM + SLOTS_PER_SIM // 2}


def demo_config(large_urls: list[str], small_url: str, limits: dict[str, int] | None = None) -> GatewayConfig:
    """Embedded defaults: one pool per model, the small model as ``chat``'s fallback, default classes.

    ``limits`` replaces the admission limits ({} for the gateway's defaults; benchmarks/demo_admission.py)."""
    return parse_config({
        "listen": {"host": "127.0.0.1", "port": 0},
        "models": {
            "chat": {"endpoints": [{"url": url + "/v1"} for url in large_urls], "upstream_model": "sim-large",
                     "picker": "prefix-affinity", "fallback": ["chat-small"]},
            "chat-small": {"endpoints": [{"url": small_url + "/v1"}], "upstream_model": "sim-fast"},
        },
        # A quarter of each endpoint's slots is kept for premium, so a surge of standard and batch work cannot
        # fill the batch ahead of it (docs/admission.md, "critical reserve"). The limits start at the
        # simulators' batch size, as an operator who knows the fleet sets them: with the default (64) the
        # gateway learns it from the servers' queues only once the surge has filled them.
        "admission": {"critical_reserve": 0.25, **(demo_limits() if limits is None else limits)},
        "access_log": {"enabled": False},
    }, env={})


def demo_workload(duration_s: float) -> dict[str, Any]:
    """The built-in surge, scaled to ``duration_s``: base load, a 3x surge in the middle third, base again."""
    third = max(duration_s / 3.0, 0.5)
    return {
        "name": "demo-surge",
        "model": "chat",
        "duration_s": duration_s,
        "max_requests": 4000,
        "arrival": {"kind": "surge", "rate": 6, "multiplier": 3, "start_s": third, "length_s": third},
        "prompt_tokens": {"dist": "lognormal", "mean": 200, "sigma": 0.5, "min": 16, "max": 2000},
        "output_tokens": {"dist": "uniform", "min": 24, "max": 120},
        "shared_prefix": {"share": 0.4, "count": 4, "tokens": 256},
        "classes": {
            "premium": {"weight": 1, "ttft_ms": 500, "itl_ms": 50},
            "standard": {"weight": 3, "ttft_ms": 2000, "itl_ms": 100},
            "batch": {"weight": 2},
        },
        "abandonment": {"probability": 0.05, "after_ms": 2000},
    }


def gateway_story(gw: Gateway) -> list[str]:
    """What the gateway did, read from its own metrics registry: shedding, zombies stopped, degradation."""
    totals: dict[str, float] = {}
    for family in gw.metrics.registry.collect():
        for sample in family.samples:
            if sample.name == "tokenyard_requests_total":
                outcome = sample.labels.get("outcome", "")
                totals[outcome] = totals.get(outcome, 0.0) + sample.value
            elif sample.name == "tokenyard_upstream_aborts_total":
                totals["aborts"] = totals.get("aborts", 0.0) + sample.value
            elif sample.name == "tokenyard_degradation_actions_total":
                totals["degraded"] = totals.get("degraded", 0.0) + sample.value
    return [
        f"gateway: {totals.get('completed', 0):.0f} completed, {totals.get('shed', 0):.0f} shed early, "
        f"{totals.get('expired', 0):.0f} expired in queue, {totals.get('rate_limited', 0):.0f} rate limited",
        f"gateway: {totals.get('aborts', 0):.0f} upstream generations stopped when their clients left (no zombies), "
        f"{totals.get('degraded', 0):.0f} degradation actions applied",
    ]


async def run_demo(duration: float | None, load: bool, out: str | None) -> None:
    from tokenyard.bench import parse_workload, run_workload

    async with AsyncExitStack() as stack:
        sims = [await stack.enter_async_context(running_sim("large", seed=i, max_num_seqs=SLOTS_PER_SIM))
                for i in range(FLEET_SIZE)]
        small = await stack.enter_async_context(running_sim("fast", seed=99, ttft_ms=30.0, itl_ms=4.0))
        gw = await stack.enter_async_context(
            running_gateway(demo_config([s.base_url for s in sims], small.base_url)))
        print(f"tokenyard demo listening on {gw.base_url}", flush=True)
        print(f"  fleet: {', '.join(s.base_url for s in sims)} (chat), {small.base_url} (chat-small)", flush=True)
        print(f"  OpenAI API: {gw.base_url}/v1 (models 'chat', 'chat-small')", flush=True)
        print(f"  dashboard:  {gw.base_url}/dashboard", flush=True)
        print(f"  metrics:    {gw.base_url}/metrics", flush=True)
        stop = asyncio.Event()
        report_task = None
        if load:
            run_s = max(duration - 1.0, 1.0) if duration is not None else SURGE_RUN_S
            print(f"  running a {run_s:.0f} s surge workload (3x load in the middle third) ...", flush=True)
            report_task = asyncio.create_task(run_workload(
                gw.base_url, parse_workload(demo_workload(run_s)), out_dir=out, progress=True, stop=stop))
        try:
            if duration is not None:
                await runtime.wait_for_shutdown(duration)
            elif report_task is not None:
                # Until Ctrl-C: show the report once the surge is over, then keep serving.
                shutdown = asyncio.create_task(runtime.wait_for_shutdown())
                await asyncio.wait({shutdown, report_task}, return_when=asyncio.FIRST_COMPLETED)
                if not shutdown.done():
                    _print_report(report_task.result().summary, gw, out)
                    report_task = None
                    print("  still serving; Ctrl-C to stop", flush=True)
                    await shutdown
            else:
                await runtime.wait_for_shutdown()
        finally:
            if report_task is not None:
                stop.set()
                with contextlib.suppress(asyncio.CancelledError):
                    summary = (await report_task).summary
                    _print_report(summary, gw, out)


def _print_report(summary: dict[str, Any], gw: RunningGateway, out: str | None) -> None:
    from tokenyard.bench.cli import print_summary

    print_summary(summary)
    for line in gateway_story(gw.gateway):
        print("  " + line, flush=True)
    if out:
        print(f"  report written to {Path(out) / 'report.html'}", flush=True)


@click.command("demo")
@click.option("--duration", type=float, default=None, help="Seconds to run, then exit 0 (default: until Ctrl-C).")
@click.option("--no-load", is_flag=True, help="Start the fleet and gateway without the surge workload.")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Also write the bench report (report.json, plots, report.html) to this folder.")
def command(duration: float | None, no_load: bool, out: str | None) -> None:
    """Simulated fleet + gateway + dashboard + a surge workload, on embedded defaults; prints the SLO report."""
    runtime.run(run_demo(duration, not no_load, out))
