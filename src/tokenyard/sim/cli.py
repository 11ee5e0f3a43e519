"""``tokenyard sim``: one simulator (LLM, retrieval or tool) or a whole fleet from a YAML file."""

from __future__ import annotations

import sys
from typing import Any

import click

from tokenyard.cli import port_type
from tokenyard.sim.faults import FaultConfig, parse_faults
from tokenyard.sim.params import PROFILES, SimParams

# Flags that override SimParams fields (None = keep the profile's value).
_PARAM_FLAGS: list[tuple[str, Any, str]] = [
    ("max_num_seqs", int, "running sequences per step"),
    ("max_num_batched_tokens", int, "token budget per step"),
    ("max_queue", int, "waiting requests before 429"),
    ("kv_blocks", int, "KV cache size in blocks of 16 tokens"),
    ("max_model_len", int, "prompt + output tokens per request"),
    ("ttft_ms", float, "TTFT of an empty prompt at no load"),
    ("itl_ms", float, "decode step time with one running sequence"),
    ("load_factor", float, "step time multiplier at max_num_seqs running"),
    ("prefill_ms_per_token", float, "prefill cost per uncached prompt token"),
    ("output_len", int, "output tokens when max_tokens is not given (mean for distributions)"),
    ("output_len_dist", click.Choice(["fixed", "uniform", "exponential"]), "output length distribution"),
    ("jitter", float, "step time x uniform(1-F, 1+F)"),
    ("model_name", str, "served model id"),
]
_FAULT_FLAGS: list[tuple[str, Any, str]] = [
    ("error_rate", float, "fraction of requests answered with --error-status"),
    ("error_status", click.Choice(["429", "500", "503"]), "status of injected errors"),
    ("latency_spike_rate", float, "fraction of requests that stall once"),
    ("latency_spike_ms", float, "length of that stall"),
    ("ttft_inflation_ms", float, "added to every request's time to first token"),
    ("hang_rate", float, "fraction of requests accepted and never answered"),
    ("drop_after_tokens", int, "close the connection after this many tokens"),
    ("drop_rate", float, "fraction of requests the drop applies to"),
    ("capacity_slots", int, "fewer running slots than max_num_seqs"),
]


def _options(func: Any) -> Any:
    for name, kind, text in reversed(_PARAM_FLAGS + _FAULT_FLAGS):
        func = click.option("--" + name.replace("_", "-"), name, type=kind, default=None, help=text)(func)
    return func


def params_from(profile_name: str, seed: int, abort_on_disconnect: bool, values: dict[str, Any]) -> SimParams:
    overrides = {name: values[name] for name, _k, _t in _PARAM_FLAGS if values.get(name) is not None}
    return PROFILES[profile_name].replace(seed=seed, abort_on_disconnect=abort_on_disconnect, **overrides)


def faults_from(values: dict[str, Any]) -> FaultConfig:
    fields = {name: values[name] for name, _k, _t in _FAULT_FLAGS if values.get(name) is not None}
    if "error_status" in fields:
        fields["error_status"] = int(fields["error_status"])
    return parse_faults(fields)


@click.command("sim")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=port_type(), default=8000, show_default=True, help="0 picks a free port")
@click.option("--profile", "profile_name", type=click.Choice(sorted(PROFILES)), default="large", show_default=True)
@click.option("--kind", type=click.Choice(["llm", "retrieval", "tool"]), default="llm", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--abort-on-disconnect/--no-abort-on-disconnect", default=True, show_default=True,
              help="free a sequence when its client goes away (vLLM) or keep generating (zombies)")
@click.option("--fleet", "fleet_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="YAML list of simulators to start in this process")
@click.option("--duration", type=float, default=None, help="stop after this many seconds")
@_options
def command(host: str, port: int, profile_name: str, kind: str, seed: int, abort_on_disconnect: bool,
            fleet_file: str | None, duration: float | None, **values: Any) -> None:
    """Simulated model server (or retrieval / tool service, or a fleet of them)."""
    from tokenyard.runtime import run
    from tokenyard.sim.fleet import FleetError, SimSpec, load_fleet, run_fleet

    try:
        if fleet_file is not None:
            specs = load_fleet(fleet_file)
        else:
            params = params_from(profile_name, seed, abort_on_disconnect, values)
            # Retrieval / tool kinds take the seed here; their other parameters come from a fleet file.
            specs = [SimSpec(name="sim", kind=kind, host=host, port=port, params=params,
                             faults=faults_from(values), service={"seed": seed})]
    except (ValueError, FleetError) as exc:
        raise click.UsageError(str(exc)) from None
    sys.exit(run(run_fleet(specs, duration, named=fleet_file is not None)))
