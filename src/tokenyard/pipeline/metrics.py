"""The pipeline worker's metrics, on its own ``CollectorRegistry`` (names: docs/pipelines.md#metrics)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from tokenyard.pipeline.event import OUTCOMES

WASTE_REASONS: tuple[str, ...] = ("aborted", "expired", "superseded", "duplicate", "failed")
SECONDS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0)


class PipelineMetrics:
    def __init__(self, pipeline: str, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        p = pipeline
        events = Counter("tokenyard_pipeline_events", "Events finished, by terminal outcome.",
                         ("pipeline", "outcome"), registry=r)
        self.events = {o: events.labels(p, o) for o in OUTCOMES}
        self.lag = Gauge("tokenyard_pipeline_lag", "Entries of the source stream the group has not finished "
                         "(never delivered + pending).", ("pipeline",), registry=r).labels(p)
        self.inflight = Gauge("tokenyard_pipeline_inflight", "Events this worker holds (bounded by max_inflight).",
                              ("pipeline",), registry=r).labels(p)
        self.inferring = Gauge("tokenyard_pipeline_inferences_inflight", "Inference requests open upstream.",
                               ("pipeline",), registry=r).labels(p)
        self.paused = Gauge("tokenyard_pipeline_paused", "1 while a pause control event is in force.",
                            ("pipeline",), registry=r).labels(p)
        wasted = Counter("tokenyard_pipeline_wasted_tokens", "Completion tokens generated for results that were "
                         "thrown away, by reason.", ("pipeline", "reason"), registry=r)
        self.wasted = {reason: wasted.labels(p, reason) for reason in WASTE_REASONS}
        tokens = Counter("tokenyard_pipeline_tokens", "Tokens of completed inferences.", ("pipeline", "kind"),
                         registry=r)
        self.prompt_tokens = tokens.labels(p, "prompt")
        self.completion_tokens = tokens.labels(p, "completion")
        self.redeliveries = Counter("tokenyard_pipeline_redeliveries", "Events claimed from an idle consumer "
                                    "(a dead or slow worker).", ("pipeline",), registry=r).labels(p)
        self.retries = Counter("tokenyard_pipeline_attempt_failures", "Attempts that failed transiently and were "
                               "left pending for a retry.", ("pipeline",), registry=r).labels(p)
        self.duration = Histogram("tokenyard_pipeline_processing_seconds", "Dequeue to result written.",
                                  ("pipeline",), buckets=SECONDS, registry=r).labels(p)
        self.end_to_end = Histogram("tokenyard_pipeline_end_to_end_seconds", "Event created to result written.",
                                    ("pipeline",), buckets=SECONDS, registry=r).labels(p)
        ingest = Counter("tokenyard_pipeline_ingest", "HTTP ingest requests, by result (accepted, refused, "
                         "invalid).", ("pipeline", "result"), registry=r)
        self.ingest = {k: ingest.labels(p, k) for k in ("accepted", "refused", "invalid")}
        self.control = Counter("tokenyard_pipeline_control_events", "Control events applied, by action.",
                               ("pipeline", "action"), registry=r)
        self.pipeline = p

    def render(self) -> bytes:
        return generate_latest(self.registry)
