"""The pipeline graph as YAML: typed frozen structs, unknown keys are errors (reference: docs/pipelines.md).

``load_spec(path)`` / ``parse_spec(mapping)`` raise ``SpecError`` naming the key path of the first problem.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import msgspec
import yaml

from tokenyard.pipeline.eventlog import dead_stream, log_url_problem

PositiveInt = Annotated[int, msgspec.Meta(ge=1)]
NonNegative = Annotated[float, msgspec.Meta(ge=0)]


class _Spec(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    pass


class Condition(_Spec, frozen=True):
    """A test on one field of the event: ``equals``, ``one_of``, ``exists``, ``min``/``max`` (numbers);
    ``negate`` inverts it. Several tests on one condition must all hold."""

    field: str
    equals: Any = None
    one_of: tuple[Any, ...] | None = None
    exists: bool | None = None
    min: float | None = None
    max: float | None = None
    negate: bool = False


class HttpIngestSpec(_Spec, frozen=True):
    host: str = "127.0.0.1"
    port: int = 0
    max_lag: PositiveInt = 10_000  # above this many unfinished entries, POSTs get 429 + Retry-After
    retry_after_s: PositiveInt = 1


class SourceSpec(_Spec, frozen=True):
    stream: str
    group: str = "tokenyard"
    http: HttpIngestSpec | None = None


class TemplateSpec(_Spec, frozen=True):
    text: str  # str.format fields from the event; {a.b} reaches into objects
    into: str = "prompt"


class EnrichSpec(_Spec, frozen=True):
    """POST ``{url}/retrieve {"query", "top_k"}``; the documents' texts land in ``into`` (joined by newlines)."""

    url: str
    query: str = "{text}"
    top_k: PositiveInt = 3
    into: str = "documents"
    timeout_ms: PositiveInt = 5_000
    required: bool = False  # True: a failed retrieval fails the attempt (retried); False: continue without


class TransformSpec(_Spec, frozen=True):
    filter: Condition | None = None
    template: TemplateSpec | None = None
    enrich: EnrichSpec | None = None


class InferenceSpec(_Spec, frozen=True):
    """``gateway``: a gateway config file or an inline mapping (models, classes, tenants); or ``upstream``: one
    OpenAI-compatible base URL. The request goes through the same admission and router as the gateway's."""

    model: str
    gateway: str | dict[str, Any] | None = None
    upstream: str | None = None
    klass: str = msgspec.field(default="batch", name="class")
    prompt_field: str = "prompt"
    max_tokens: PositiveInt | None = 64
    temperature: float | None = None
    chat: bool = True
    timeout_ms: PositiveInt = 300_000  # upper bound of one inference when the event has no deadline


class StreamSinkSpec(_Spec, frozen=True):
    stream: str
    log: str | None = None  # another log URL; default: the pipeline's


class JsonlSinkSpec(_Spec, frozen=True):
    path: str


class WebhookSinkSpec(_Spec, frozen=True):
    url: str
    timeout_ms: PositiveInt = 10_000


class SinkSpec(_Spec, frozen=True):
    stream: StreamSinkSpec | None = None
    jsonl: JsonlSinkSpec | None = None
    webhook: WebhookSinkSpec | None = None
    outcomes: tuple[str, ...] = ("completed",)  # which terminal outcomes become records in this sink


class DeliverySpec(_Spec, frozen=True):
    max_attempts: PositiveInt = 3
    claim_idle_ms: PositiveInt = 30_000  # pending this long (a dead worker's events): another worker claims


class ValuableSpec(_Spec, frozen=True):
    """Is the event still worth inference? All given tests must hold: age, field conditions, a Python hook
    ``"module:function"`` called as ``fn(event, now_ms) -> bool``."""

    max_age_ms: NonNegative | None = None
    when: tuple[Condition, ...] = ()
    hook: str | None = None


class LifecycleSpec(_Spec, frozen=True):
    ttl_ms: NonNegative | None = None  # default TTL for events that carry no deadline
    supersede: bool = False  # latest-wins by key: an older event of a key is dropped (or cancelled) by a newer
    per_key: PositiveInt | None = None  # concurrent inferences per key
    per_tenant: PositiveInt | None = None  # concurrent inferences per tenant
    valuable: ValuableSpec | None = None


class ControlSpec(_Spec, frozen=True):
    stream: str | None = None  # default: "<source stream>:control"


class MetricsSpec(_Spec, frozen=True):
    host: str = "127.0.0.1"
    port: int | None = None  # None: no metrics server (the HTTP ingest serves /metrics when enabled)


class WorkerSpec(_Spec, frozen=True):
    max_inflight: PositiveInt = 64
    batch: PositiveInt = 64
    block_ms: PositiveInt = 200
    claim_every_ms: PositiveInt = 1_000
    consumer: str | None = None  # default: hostname-pid
    metrics: MetricsSpec = msgspec.field(default_factory=MetricsSpec)


class PipelineSpec(_Spec, frozen=True):
    name: str
    log: str  # redis://... (Redis Streams) or sqlite:///path (embedded)
    source: SourceSpec
    inference: InferenceSpec
    transforms: tuple[TransformSpec, ...] = ()
    sinks: tuple[SinkSpec, ...] = ()
    delivery: DeliverySpec = msgspec.field(default_factory=DeliverySpec)
    lifecycle: LifecycleSpec = msgspec.field(default_factory=LifecycleSpec)
    control: ControlSpec = msgspec.field(default_factory=ControlSpec)
    worker: WorkerSpec = msgspec.field(default_factory=WorkerSpec)

    @property
    def dead_letter_stream(self) -> str:
        return dead_stream(self.source.stream)

    @property
    def control_stream(self) -> str:
        return self.control.stream or self.source.stream + ":control"

    @property
    def lineage_stream(self) -> str:
        return f"{self.source.stream}:lineage:{self.name}"


class SpecError(ValueError):
    """The pipeline file is invalid; the message names the key path."""


def _one_of(obj: msgspec.Struct, path: str) -> None:
    set_fields = [f for f in obj.__struct_fields__ if getattr(obj, f) is not None and f != "outcomes"]
    if len(set_fields) != 1:
        names = ", ".join(f for f in obj.__struct_fields__ if f != "outcomes")
        raise SpecError(f"{path}: exactly one of {names} is required")


def parse_spec(mapping: Any) -> PipelineSpec:
    try:
        spec = msgspec.convert(mapping, PipelineSpec, strict=False)
    except msgspec.ValidationError as exc:
        raise SpecError(str(exc).replace("$.", "")) from None
    for i, t in enumerate(spec.transforms):
        _one_of(t, f"transforms[{i}]")
    for i, s in enumerate(spec.sinks):
        _one_of(s, f"sinks[{i}]")
    logs = [("log", spec.log)] + [(f"sinks[{i}].stream.log", s.stream.log) for i, s in enumerate(spec.sinks)
                                  if s.stream is not None and s.stream.log is not None]
    for path, url in logs:
        problem = log_url_problem(url)
        if problem is not None:
            raise SpecError(f"{path}: {problem}")
    if (spec.inference.gateway is None) == (spec.inference.upstream is None):
        raise SpecError("inference: exactly one of gateway, upstream is required")
    if spec.lifecycle.valuable and spec.lifecycle.valuable.hook and ":" not in spec.lifecycle.valuable.hook:
        raise SpecError("lifecycle.valuable.hook: expected 'module:function'")
    return spec


def load_spec(path: str | Path) -> PipelineSpec:
    try:
        document = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise SpecError(f"cannot read {path}: {exc}") from None
    return parse_spec(document)
