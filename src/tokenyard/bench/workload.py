"""Workload files: what traffic to send, parsed from YAML into frozen value objects.

A workload describes *user actions* (workflows: a chat turn, a RAG answer, an agent run), how often they arrive,
how long prompts and answers are, which classes and tenants send them, and how impatient users are. See
docs/bench.md for the reference and an example. Built-in workloads live beside this module in ``workloads/``.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from tokenyard.bench.arrivals import Arrivals, parse_arrivals
from tokenyard.bench.distributions import LengthDist, constant, parse_length
from tokenyard.bench.errors import WorkloadError

WORKFLOW_KINDS = ("chat", "rag", "agent")
# SLO defaults by well-known class name (CONTRACTS.md's example classes); any other name gets DEFAULT_SLO.
DEFAULT_SLOS: dict[str, tuple[float | None, float | None, float | None]] = {
    "premium": (500.0, 50.0, None),
    "standard": (2000.0, 100.0, None),
    "batch": (None, None, None),
}
DEFAULT_SLO: tuple[float | None, float | None, float | None] = (2000.0, 100.0, None)
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class ClassSpec:
    """A traffic class: its share of actions and its SLOs in milliseconds (None: not part of goodput);
    ``deadline_ms``, when set, is sent as ``x-tokenyard-deadline-ms`` (the client's own budget)."""

    name: str
    weight: float = 1.0
    ttft_ms: float | None = 2000.0
    itl_ms: float | None = 100.0
    e2e_ms: float | None = None
    deadline_ms: float | None = None


@dataclass(frozen=True)
class TenantSpec:
    """A tenant: its share of actions and the API key its requests carry (None: no Authorization header)."""

    name: str
    weight: float = 1.0
    api_key: str | None = None


@dataclass(frozen=True)
class WorkflowSpec:
    """A kind of user action. rag: retrieval (when ``retrieval_url`` is set) then one generation with
    ``context_tokens`` more prompt; agent: generation, then ``steps`` x (tool call, generation)."""

    name: str
    kind: str = "chat"
    weight: float = 1.0
    retrieval_url: str | None = None
    top_k: int = 4
    context_tokens: int = 512
    retrieval_timeout_ms: float = 2000.0
    steps: int = 3
    tool_url: str | None = None
    tools: tuple[str, ...] = ("search",)


@dataclass(frozen=True)
class SharedPrefix:
    """``share`` of generations start with one of ``count`` shared prefixes of ``tokens`` tokens."""

    share: float = 0.0
    count: int = 1
    tokens: int = 0


@dataclass(frozen=True)
class Abandonment:
    """With ``probability``, a generation is abandoned after ``after_ms`` or ``after_tokens`` (whichever first)."""

    probability: float = 0.0
    after_ms: float | None = None
    after_tokens: int | None = None


@dataclass(frozen=True)
class Workload:
    name: str = "custom"
    model: str | None = None
    stream: bool = True
    seed: int = 0
    duration_s: float = 60.0
    max_requests: int = 1000
    concurrency: int | None = None
    arrival: Arrivals = field(default_factory=lambda: Arrivals(kind="poisson", rate=2.0))
    prompt_tokens: LengthDist = field(default_factory=lambda: constant(128))
    output_tokens: LengthDist = field(default_factory=lambda: constant(64))
    shared_prefix: SharedPrefix = field(default_factory=SharedPrefix)
    classes: tuple[ClassSpec, ...] = (ClassSpec(name="default"),)
    tenants: tuple[TenantSpec, ...] = (TenantSpec(name="default"),)
    workflows: tuple[WorkflowSpec, ...] = (WorkflowSpec(name="chat"),)
    abandonment: Abandonment = field(default_factory=Abandonment)
    request_timeout_s: float = 120.0
    extra_body: Mapping[str, Any] = field(default_factory=dict)

    def with_overrides(self, **changes: Any) -> Workload:
        """A copy with some fields replaced (None values are ignored), as the CLI flags do."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def class_spec(self, name: str) -> ClassSpec:
        for spec in self.classes:
            if spec.name == name:
                return spec
        return ClassSpec(name=name)


def builtin_names() -> list[str]:
    folder = resources.files("tokenyard.bench").joinpath("workloads")
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_workload(name_or_path: str | Path, env: Mapping[str, str] | None = None) -> Workload:
    """Load a built-in workload by name (``chat``, ``rag``, ``agent``, ``surge``, ...) or a YAML file by path."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        try:
            text = path.read_text()
        except OSError as exc:
            raise WorkloadError(str(path), f"cannot read: {exc.strerror}") from exc
        default_name = path.stem
    else:
        resource = resources.files("tokenyard.bench").joinpath("workloads").joinpath(f"{name_or_path}.yaml")
        if not resource.is_file():
            raise WorkloadError("workload", f"no file or built-in named {name_or_path!r}; built-ins: "
                                f"{', '.join(builtin_names())}")
        text = resource.read_text()
        default_name = str(name_or_path)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise WorkloadError(str(name_or_path), f"invalid YAML: {exc}") from exc
    return parse_workload(data or {}, env=env, default_name=default_name)


def parse_workload(data: Any, env: Mapping[str, str] | None = None, default_name: str = "custom") -> Workload:
    """Build a Workload from a decoded YAML mapping; ``${VAR}`` in strings comes from ``env`` (os.environ)."""
    if not isinstance(data, Mapping):
        raise WorkloadError("workload", "expected a mapping at the top level")
    data = _substitute(data, os.environ if env is None else env, "")
    allowed = {"name", "model", "stream", "seed", "duration_s", "max_requests", "concurrency", "arrival",
               "prompt_tokens", "output_tokens", "shared_prefix", "classes", "tenants", "workflows",
               "abandonment", "request_timeout_s", "extra_body"}
    _no_unknown(data, allowed, "")
    base = Workload()
    concurrency = data.get("concurrency")
    if concurrency is not None and (_num(concurrency, "concurrency") < 1 or int(concurrency) != concurrency):
        raise WorkloadError("concurrency", "must be a positive integer")
    extra = data.get("extra_body", {})
    if not isinstance(extra, Mapping):
        raise WorkloadError("extra_body", "expected a mapping of extra JSON request fields")
    stream = data.get("stream", True)
    if not isinstance(stream, bool):
        raise WorkloadError("stream", "expected true or false")
    model = data.get("model")
    if model is not None and not isinstance(model, str):
        raise WorkloadError("model", "expected a string")
    return Workload(
        name=str(data.get("name", default_name)),
        model=model,
        stream=stream,
        seed=int(_num(data.get("seed", 0), "seed")),
        duration_s=_positive(data.get("duration_s", base.duration_s), "duration_s"),
        max_requests=int(_positive(data.get("max_requests", base.max_requests), "max_requests")),
        concurrency=None if concurrency is None else int(concurrency),
        arrival=parse_arrivals(data["arrival"]) if "arrival" in data else base.arrival,
        prompt_tokens=parse_length(data.get("prompt_tokens", 128), "prompt_tokens"),
        output_tokens=parse_length(data.get("output_tokens", 64), "output_tokens"),
        shared_prefix=_shared_prefix(data.get("shared_prefix", {})),
        classes=_classes(data.get("classes")),
        tenants=_tenants(data.get("tenants")),
        workflows=_workflows(data.get("workflows")),
        abandonment=_abandonment(data.get("abandonment", {})),
        request_timeout_s=_positive(data.get("request_timeout_s", base.request_timeout_s), "request_timeout_s"),
        extra_body=dict(extra),
    )


def _classes(raw: Any) -> tuple[ClassSpec, ...]:
    if raw is None:
        return (ClassSpec(name="default"),)
    out = []
    for name, spec in _named(raw, "classes"):
        where = f"classes.{name}"
        _no_unknown(spec, {"weight", "ttft_ms", "itl_ms", "e2e_ms", "deadline_ms"}, where)
        ttft, itl, e2e = DEFAULT_SLOS.get(name, DEFAULT_SLO)
        out.append(ClassSpec(
            name=name, weight=_weight(spec.get("weight", 1.0), f"{where}.weight"),
            ttft_ms=_opt_positive(spec.get("ttft_ms", ttft), f"{where}.ttft_ms"),
            itl_ms=_opt_positive(spec.get("itl_ms", itl), f"{where}.itl_ms"),
            e2e_ms=_opt_positive(spec.get("e2e_ms", e2e), f"{where}.e2e_ms"),
            deadline_ms=_opt_positive(spec.get("deadline_ms"), f"{where}.deadline_ms"),
        ))
    return tuple(out)


def _tenants(raw: Any) -> tuple[TenantSpec, ...]:
    if raw is None:
        return (TenantSpec(name="default"),)
    out = []
    for name, spec in _named(raw, "tenants"):
        where = f"tenants.{name}"
        _no_unknown(spec, {"weight", "api_key"}, where)
        key = spec.get("api_key")
        if key is not None and not isinstance(key, str):
            raise WorkloadError(f"{where}.api_key", "expected a string")
        out.append(TenantSpec(name=name, weight=_weight(spec.get("weight", 1.0), f"{where}.weight"), api_key=key))
    return tuple(out)


def _workflows(raw: Any) -> tuple[WorkflowSpec, ...]:
    if raw is None:
        return (WorkflowSpec(name="chat"),)
    out = []
    for name, spec in _named(raw, "workflows"):
        where = f"workflows.{name}"
        _no_unknown(spec, {"kind", "weight", "retrieval_url", "top_k", "context_tokens", "retrieval_timeout_ms",
                           "steps", "tool_url", "tools"}, where)
        kind = spec.get("kind", name)
        if kind not in WORKFLOW_KINDS:
            raise WorkloadError(f"{where}.kind", f"must be one of {list(WORKFLOW_KINDS)}")
        tools = spec.get("tools", ["search"])
        if not isinstance(tools, list) or not tools or not all(isinstance(t, str) and t for t in tools):
            raise WorkloadError(f"{where}.tools", "expected a non-empty list of tool names")
        for key in ("retrieval_url", "tool_url"):
            if spec.get(key) is not None and not isinstance(spec[key], str):
                raise WorkloadError(f"{where}.{key}", "expected a URL string")
        out.append(WorkflowSpec(
            name=name, kind=kind, weight=_weight(spec.get("weight", 1.0), f"{where}.weight"),
            retrieval_url=spec.get("retrieval_url"), top_k=int(_positive(spec.get("top_k", 4), f"{where}.top_k")),
            context_tokens=int(_positive(spec.get("context_tokens", 512), f"{where}.context_tokens")),
            retrieval_timeout_ms=_positive(spec.get("retrieval_timeout_ms", 2000), f"{where}.retrieval_timeout_ms"),
            steps=int(_positive(spec.get("steps", 3), f"{where}.steps")), tool_url=spec.get("tool_url"),
            tools=tuple(tools),
        ))
    return tuple(out)


def _shared_prefix(raw: Any) -> SharedPrefix:
    if not isinstance(raw, Mapping):
        raise WorkloadError("shared_prefix", "expected a mapping with share, count and tokens")
    _no_unknown(raw, {"share", "count", "tokens"}, "shared_prefix")
    share = _num(raw.get("share", 0.0), "shared_prefix.share")
    if not 0 <= share <= 1:
        raise WorkloadError("shared_prefix.share", "must be within 0..1")
    count = int(_positive(raw.get("count", 1), "shared_prefix.count"))
    tokens = int(_num(raw.get("tokens", 256 if share > 0 else 0), "shared_prefix.tokens"))
    if tokens < 0 or (share > 0 and tokens == 0):
        raise WorkloadError("shared_prefix.tokens", "must be a positive token count when share > 0")
    return SharedPrefix(share=share, count=count, tokens=tokens)


def _abandonment(raw: Any) -> Abandonment:
    if not isinstance(raw, Mapping):
        raise WorkloadError("abandonment", "expected a mapping with probability and after_ms or after_tokens")
    _no_unknown(raw, {"probability", "after_ms", "after_tokens"}, "abandonment")
    probability = _num(raw.get("probability", 0.0), "abandonment.probability")
    if not 0 <= probability <= 1:
        raise WorkloadError("abandonment.probability", "must be within 0..1")
    after_ms = _opt_positive(raw.get("after_ms"), "abandonment.after_ms")
    after_tokens = _opt_positive(raw.get("after_tokens"), "abandonment.after_tokens")
    if probability > 0 and after_ms is None and after_tokens is None:
        raise WorkloadError("abandonment", "needs after_ms or after_tokens when probability > 0")
    return Abandonment(probability=probability, after_ms=after_ms,
                       after_tokens=None if after_tokens is None else int(after_tokens))


def _named(raw: Any, where: str) -> list[tuple[str, Mapping[str, Any]]]:
    if not isinstance(raw, Mapping) or not raw:
        raise WorkloadError(where, "expected a non-empty mapping of name -> settings")
    out = []
    for name, raw_spec in raw.items():
        spec = {} if raw_spec is None else raw_spec
        if not isinstance(spec, Mapping):
            raise WorkloadError(f"{where}.{name}", "expected a mapping")
        out.append((str(name), spec))
    return out


def _substitute(value: Any, env: Mapping[str, str], where: str) -> Any:
    if isinstance(value, str):
        def repl(match: re.Match[str]) -> str:
            if match.group(1) not in env:
                raise WorkloadError(where or "workload", f"environment variable {match.group(1)} is not set")
            return env[match.group(1)]
        return _ENV.sub(repl, value)
    if isinstance(value, Mapping):
        return {k: _substitute(v, env, f"{where}.{k}" if where else str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, env, where) for v in value]
    return value


def _no_unknown(raw: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(str(k) for k in set(raw) - allowed)
    if unknown:
        raise WorkloadError(where or "workload", f"unknown keys {unknown}; allowed: {sorted(allowed)}")


def _num(raw: Any, where: str) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
        raise WorkloadError(where, "expected a number")
    return float(raw)


def _positive(raw: Any, where: str) -> float:
    value = _num(raw, where)
    if value <= 0:
        raise WorkloadError(where, "must be positive")
    return value


def _opt_positive(raw: Any, where: str) -> float | None:
    return None if raw is None else _positive(raw, where)


def _weight(raw: Any, where: str) -> float:
    value = _num(raw, where)
    if value < 0:
        raise WorkloadError(where, "must not be negative")
    return value
