"""Several simulators in one process, from a fleet file or from the CLI flags of a single one.

Fleet file (YAML): a list (or ``{"sims": [...]}``) of entries::

    - name: chat-a          # optional, default kind-N
      kind: llm             # llm | retrieval | tool
      profile: large        # llm only: fast | large
      port: 9001            # optional; 0 or absent picks a free port
      host: 127.0.0.1       # optional
      seed: 1               # optional
      overrides: {max_num_seqs: 64, itl_ms: 20}   # SimParams fields (llm) or ServiceParams fields
      faults: {error_rate: 0.05, error_status: 503}
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tokenyard.sim.base import SimService
from tokenyard.sim.faults import FaultConfig, parse_faults
from tokenyard.sim.params import SimParams, profile
from tokenyard.sim.server import LLMSim
from tokenyard.sim.services import RetrievalSim, ServiceParams, ToolSim

_ENTRY_KEYS = {"name", "kind", "profile", "port", "host", "seed", "overrides", "faults", "abort_on_disconnect"}


class FleetError(ValueError):
    """A fleet file that cannot be used; the message names the entry and key."""


@dataclass(frozen=True)
class SimSpec:
    name: str
    kind: str
    host: str
    port: int
    params: SimParams | None
    faults: FaultConfig
    service: dict[str, Any]  # ServiceParams overrides for retrieval / tool


def parse_fleet(data: Any) -> list[SimSpec]:
    entries = data.get("sims") if isinstance(data, dict) else data
    if not isinstance(entries, list) or not entries:
        raise FleetError("a fleet file is a non-empty list of simulators (or a mapping with a 'sims' list)")
    specs: list[SimSpec] = []
    for i, entry in enumerate(entries):
        where = f"sims[{i}]"
        if not isinstance(entry, dict):
            raise FleetError(f"{where}: must be a mapping")
        unknown = sorted(set(entry) - _ENTRY_KEYS)
        if unknown:
            raise FleetError(f"{where}: unknown key(s) {', '.join(unknown)}")
        kind = entry.get("kind", "llm")
        if kind not in ("llm", "retrieval", "tool"):
            raise FleetError(f"{where}.kind: must be llm, retrieval or tool")
        overrides = entry.get("overrides") or {}
        if not isinstance(overrides, dict):
            raise FleetError(f"{where}.overrides: must be a mapping")
        seed = entry.get("seed", i)
        try:
            faults = parse_faults(entry.get("faults") or {})
            params = None
            service: dict[str, Any] = {}
            if kind == "llm":
                params = profile(str(entry.get("profile", "large"))).replace(
                    seed=seed, abort_on_disconnect=bool(entry.get("abort_on_disconnect", True)), **overrides)
            else:
                service = {**overrides, "seed": seed}
                ServiceParams().replace(**service)  # validate now, not at start
        except (ValueError, TypeError) as exc:
            raise FleetError(f"{where}: {exc}") from None
        port = entry.get("port", 0)
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise FleetError(f"{where}.port: must be an integer in [0, 65535]")
        specs.append(SimSpec(str(entry.get("name", f"{kind}-{i}")), kind, str(entry.get("host", "127.0.0.1")), port,
                             params, faults, service))
    return specs


def load_fleet(path: str | Path) -> list[SimSpec]:
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise FleetError(f"{path}: {exc}") from None
    return parse_fleet(data)


def build(spec: SimSpec) -> SimService:
    if spec.kind == "llm":
        assert spec.params is not None
        return LLMSim(spec.params, spec.faults)
    params = ServiceParams().replace(**spec.service)
    return RetrievalSim(params, spec.faults) if spec.kind == "retrieval" else ToolSim(params, spec.faults)


async def run_fleet(specs: list[SimSpec], duration: float | None = None, *, named: bool = True) -> int:
    """Start every simulator, print where each listens, wait for SIGINT/SIGTERM (or ``duration``), stop all.

    ``named``: each line names the simulator and its kind (a fleet file, whatever its length: a one-entry fleet
    printed the single simulator's line, which scripts reading NAME (KIND) could not parse); False for the one
    simulator of the command-line flags."""
    from tokenyard.runtime import wait_for_shutdown

    started: list[SimService] = []
    try:
        for spec in specs:
            service = build(spec)
            await service.start(spec.host, spec.port)
            started.append(service)
            label = f"tokenyard sim {spec.name} ({spec.kind})" if named else "tokenyard sim"
            print(f"{label} listening on {service.base_url}", flush=True)
        await wait_for_shutdown(duration)
    except OSError as exc:
        print(f"tokenyard sim: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        for service in reversed(started):
            await service.stop()
    return 0


def describe(spec: SimSpec) -> dict[str, Any]:
    return {"name": spec.name, "kind": spec.kind, "port": spec.port,
            "params": dataclasses.asdict(spec.params) if spec.params else spec.service}
