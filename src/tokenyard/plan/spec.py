"""Plan inputs, parsed from YAML into frozen value objects (see docs/planning.md for the reference).

A plan describes *what users do* (workflows: how many requests to which model per user action, and how long their
prompts and answers are), *how many users* (a traffic forecast), *what each class was promised* (TTFT / ITL p95),
*what a replica can do* (a simulator profile or a bench measurement) and *what it costs* (a price table).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from tokenyard.bench.distributions import LengthDist, parse_length
from tokenyard.bench.errors import WorkloadError
from tokenyard.plan.errors import PlanError


@dataclass(frozen=True)
class ClassSLO:
    """A traffic class: its share of user actions and its p95 promises in ms (None: no promise)."""

    name: str
    share: float = 1.0
    ttft_p95_ms: float | None = None
    itl_p95_ms: float | None = None


@dataclass(frozen=True)
class Hop:
    """``requests`` generations on ``model`` per user action, each with these prompt/output lengths."""

    model: str
    requests: float = 1.0
    prompt_tokens: LengthDist = field(default_factory=lambda: parse_length(256, "prompt_tokens"))
    output_tokens: LengthDist = field(default_factory=lambda: parse_length(128, "output_tokens"))


@dataclass(frozen=True)
class WorkflowDemand:
    """A kind of user action: its share of actions, its hops and (optionally) its own class mix."""

    name: str
    share: float
    hops: tuple[Hop, ...]
    class_mix: Mapping[str, float] | None = None  # class name -> weight; None: the classes' global shares


@dataclass(frozen=True)
class Forecast:
    """Traffic now and its growth. Exactly one of ``peak_actions_per_s`` / ``monthly_actions`` is set."""

    peak_actions_per_s: float | None = None  # today's peak user actions per second
    monthly_actions: float | None = None  # today's user actions per month
    monthly_growth: float = 0.0  # 0.1 = +10 % per month, compounded
    months_ahead: int = 0
    peak_to_mean: float = 1.0  # busiest-hour rate / monthly mean rate
    surge_multiplier: float = 1.0  # incident surge on top of the monthly peak (retries, failover, a launch)


@dataclass(frozen=True)
class BackendSpec:
    """How one replica of a model behaves: a simulator profile (+ overrides) or a bench report calibration."""

    model: str
    profile: str = "large"
    overrides: Mapping[str, Any] = field(default_factory=dict)
    bench_report: str | None = None  # path to a tokenyard bench report.json
    bench_replicas: int = 1  # replicas that served the measured run


@dataclass(frozen=True)
class Price:
    replica_hour: float = 0.0
    per_million_tokens: float = 0.0


@dataclass(frozen=True)
class SimulationSettings:
    """Discrete-event simulation bounds: virtual seconds of arrivals, warm-up excluded, seed, search cap."""

    duration_s: float = 60.0
    min_requests: int = 1500  # the simulated window is stretched until it holds this many arrivals ...
    max_duration_s: float = 600.0  # ... but never beyond this
    warmup_s: float = 5.0
    seed: int = 0
    max_replicas: int = 512


@dataclass(frozen=True)
class PlanSpec:
    classes: tuple[ClassSLO, ...]
    workflows: tuple[WorkflowDemand, ...]
    forecast: Forecast
    backends: Mapping[str, BackendSpec]
    prices: Mapping[str, Price]
    simulation: SimulationSettings = field(default_factory=SimulationSettings)

    def class_slo(self, name: str) -> ClassSLO:
        for c in self.classes:
            if c.name == name:
                return c
        raise KeyError(name)


def builtin_names() -> list[str]:
    """The example plans shipped with tokenyard (``tokenyard plan NAME``)."""
    folder = resources.files("tokenyard.plan").joinpath("examples")
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_plan(path: str | Path) -> PlanSpec:
    """Read and parse a plan YAML file (or a built-in example by name); raise PlanError naming the bad key."""
    if not Path(path).exists() and str(path) in builtin_names():
        text = resources.files("tokenyard.plan").joinpath("examples", f"{path}.yaml").read_text(encoding="utf-8")
        return parse_plan(_yaml(text))
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise PlanError("file", f"cannot read {path}: {exc.strerror or exc}") from exc
    return parse_plan(_yaml(text), base_dir=Path(path).resolve().parent)


def _yaml(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PlanError("file", f"not valid YAML: {exc}") from exc


def parse_plan(data: Any, base_dir: Path | None = None) -> PlanSpec:
    """Parse a plan mapping; relative ``bench_report`` paths are taken from ``base_dir``."""
    m = _mapping(data, "plan")
    _no_unknown(m, {"classes", "workflows", "forecast", "models", "prices", "simulation"}, "")
    classes = _classes(m.get("classes"))
    workflows = _workflows(m.get("workflows"), {c.name for c in classes})
    backends = _backends(m.get("models"), base_dir)
    for wf in workflows:
        for i, hop in enumerate(wf.hops):
            if hop.model not in backends:
                raise PlanError(f"workflows.{wf.name}.hops[{i}].model", f"no model {hop.model!r} under models")
    prices = _prices(m.get("prices", {}), set(backends))
    return PlanSpec(classes=classes, workflows=workflows, forecast=_forecast(m.get("forecast")),
                    backends=backends, prices=prices, simulation=_simulation(m.get("simulation", {})))


def _classes(raw: Any) -> tuple[ClassSLO, ...]:
    out = []
    for name, c in _named(raw, "classes"):
        where = f"classes.{name}"
        _no_unknown(c, {"share", "ttft_p95_ms", "itl_p95_ms"}, where)
        out.append(ClassSLO(name=name, share=_nonneg(c.get("share", 1.0), f"{where}.share"),
                            ttft_p95_ms=_opt_pos(c.get("ttft_p95_ms"), f"{where}.ttft_p95_ms"),
                            itl_p95_ms=_opt_pos(c.get("itl_p95_ms"), f"{where}.itl_p95_ms")))
    if sum(c.share for c in out) <= 0:
        raise PlanError("classes", "shares must have a positive sum")
    return tuple(out)


def _workflows(raw: Any, class_names: set[str]) -> tuple[WorkflowDemand, ...]:
    out = []
    for name, w in _named(raw, "workflows"):
        where = f"workflows.{name}"
        _no_unknown(w, {"share", "hops", "class_mix"}, where)
        hops_raw = w.get("hops")
        if not isinstance(hops_raw, list) or not hops_raw:
            raise PlanError(f"{where}.hops", "expected a non-empty list of hops")
        hops = tuple(_hop(h, f"{where}.hops[{i}]") for i, h in enumerate(hops_raw))
        mix = None
        if w.get("class_mix") is not None:
            mix_raw = _mapping(w["class_mix"], f"{where}.class_mix")
            mix = {}
            for cname, weight in mix_raw.items():
                if cname not in class_names:
                    raise PlanError(f"{where}.class_mix.{cname}", "not a class under classes")
                mix[str(cname)] = _nonneg(weight, f"{where}.class_mix.{cname}")
            if sum(mix.values()) <= 0:
                raise PlanError(f"{where}.class_mix", "weights must have a positive sum")
        out.append(WorkflowDemand(name=name, share=_nonneg(w.get("share", 1.0), f"{where}.share"), hops=hops,
                                  class_mix=mix))
    if sum(w.share for w in out) <= 0:
        raise PlanError("workflows", "shares must have a positive sum")
    return tuple(out)


def _hop(raw: Any, where: str) -> Hop:
    h = _mapping(raw, where)
    _no_unknown(h, {"model", "requests", "prompt_tokens", "output_tokens"}, where)
    model = h.get("model")
    if not isinstance(model, str) or not model:
        raise PlanError(f"{where}.model", "expected a model name")
    try:
        prompt = parse_length(h.get("prompt_tokens", 256), f"{where}.prompt_tokens")
        output = parse_length(h.get("output_tokens", 128), f"{where}.output_tokens")
    except WorkloadError as exc:
        raise PlanError(exc.key, exc.message) from exc
    return Hop(model=model, requests=_nonneg(h.get("requests", 1), f"{where}.requests"), prompt_tokens=prompt,
               output_tokens=output)


def _forecast(raw: Any) -> Forecast:
    f = _mapping(raw, "forecast")
    _no_unknown(f, {"peak_actions_per_s", "monthly_actions", "monthly_growth", "months_ahead", "peak_to_mean",
                    "surge_multiplier"}, "forecast")
    peak = _opt_pos(f.get("peak_actions_per_s"), "forecast.peak_actions_per_s")
    monthly = _opt_pos(f.get("monthly_actions"), "forecast.monthly_actions")
    if (peak is None) == (monthly is None):
        raise PlanError("forecast", "give exactly one of peak_actions_per_s and monthly_actions")
    growth = _num(f.get("monthly_growth", 0.0), "forecast.monthly_growth")
    if growth <= -1:
        raise PlanError("forecast.monthly_growth", "must be above -1 (a fraction: 0.1 is +10 % a month)")
    months = f.get("months_ahead", 0)
    if isinstance(months, bool) or not isinstance(months, int) or not 0 <= months <= 120:
        raise PlanError("forecast.months_ahead", "expected an integer within 0..120")
    ratio = _num(f.get("peak_to_mean", 1.0), "forecast.peak_to_mean")
    surge = _num(f.get("surge_multiplier", 1.0), "forecast.surge_multiplier")
    if ratio < 1:
        raise PlanError("forecast.peak_to_mean", "must be >= 1")
    if surge < 1:
        raise PlanError("forecast.surge_multiplier", "must be >= 1")
    return Forecast(peak_actions_per_s=peak, monthly_actions=monthly, monthly_growth=growth, months_ahead=months,
                    peak_to_mean=ratio, surge_multiplier=surge)


def _backends(raw: Any, base_dir: Path | None) -> dict[str, BackendSpec]:
    out: dict[str, BackendSpec] = {}
    for name, b in _named(raw, "models"):
        where = f"models.{name}"
        _no_unknown(b, {"profile", "overrides", "bench_report", "bench_replicas"}, where)
        profile = b.get("profile", "large")
        if not isinstance(profile, str):
            raise PlanError(f"{where}.profile", "expected a simulator profile name")
        overrides = dict(_mapping(b.get("overrides", {}), f"{where}.overrides"))
        report = b.get("bench_report")
        if report is not None:
            if not isinstance(report, str):
                raise PlanError(f"{where}.bench_report", "expected a path to a bench report.json")
            path = Path(report)
            report = str(path if path.is_absolute() or base_dir is None else base_dir / path)
        replicas = b.get("bench_replicas", 1)
        if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 1:
            raise PlanError(f"{where}.bench_replicas", "expected a positive integer")
        out[name] = BackendSpec(model=name, profile=profile, overrides=overrides, bench_report=report,
                                bench_replicas=replicas)
    return out


def _prices(raw: Any, models: set[str]) -> dict[str, Price]:
    out: dict[str, Price] = {}
    for name, p in _named(raw, "prices", allow_empty=True):
        where = f"prices.{name}"
        if name not in models:
            raise PlanError(where, "not a model under models")
        _no_unknown(p, {"replica_hour", "per_million_tokens"}, where)
        out[name] = Price(replica_hour=_nonneg(p.get("replica_hour", 0.0), f"{where}.replica_hour"),
                          per_million_tokens=_nonneg(p.get("per_million_tokens", 0.0), f"{where}.per_million_tokens"))
    return out


def _simulation(raw: Any) -> SimulationSettings:
    s = _mapping(raw, "simulation")
    _no_unknown(s, {"duration_s", "min_requests", "max_duration_s", "warmup_s", "seed", "max_replicas"}, "simulation")
    d = SimulationSettings()
    duration = _opt_pos(s.get("duration_s", d.duration_s), "simulation.duration_s") or d.duration_s
    max_duration = _opt_pos(s.get("max_duration_s", d.max_duration_s), "simulation.max_duration_s") or duration
    warmup = _nonneg(s.get("warmup_s", d.warmup_s), "simulation.warmup_s")
    if warmup >= duration:
        raise PlanError("simulation.warmup_s", "must be shorter than duration_s")
    ints = {}
    for key in ("min_requests", "seed", "max_replicas"):
        value = s.get(key, getattr(d, key))
        if isinstance(value, bool) or not isinstance(value, int) or value < (0 if key != "max_replicas" else 1):
            raise PlanError(f"simulation.{key}", "expected a non-negative integer")
        ints[key] = value
    return SimulationSettings(duration_s=duration, min_requests=ints["min_requests"],
                              max_duration_s=max(max_duration, duration), warmup_s=warmup, seed=ints["seed"],
                              max_replicas=ints["max_replicas"])


# -- small validators ---------------------------------------------------------------------------------------
def _mapping(raw: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise PlanError(where or "plan", "expected a mapping")
    return raw


def _named(raw: Any, where: str, allow_empty: bool = False) -> list[tuple[str, Mapping[str, Any]]]:
    m = _mapping(raw, where)
    if not m and not allow_empty:
        raise PlanError(where, "needs at least one entry")
    return [(str(k), _mapping(v if v is not None else {}, f"{where}.{k}")) for k, v in m.items()]


def _no_unknown(raw: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(str(k) for k in set(raw) - allowed)
    if unknown:
        raise PlanError(where or "plan", f"unknown keys {unknown}; allowed: {sorted(allowed)}")


def _num(raw: Any, where: str) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
        raise PlanError(where, "expected a number")
    return float(raw)


def _nonneg(raw: Any, where: str) -> float:
    value = _num(raw, where)
    if value < 0:
        raise PlanError(where, "must not be negative")
    return value


def _opt_pos(raw: Any, where: str) -> float | None:
    if raw is None:
        return None
    value = _num(raw, where)
    if value <= 0:
        raise PlanError(where, "must be positive")
    return value
