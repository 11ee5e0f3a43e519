"""Every Prometheus metric of the gateway, with the exact names of CONTRACTS.md.

``GatewayMetrics`` is built once per app on its own ``CollectorRegistry`` (never the global one), so several
gateways in one process (tests, the demo) keep separate numbers. The hot path never resolves labels per
request: ``series(model, class)`` returns a cached ``RequestSeries`` holding the label children already bound.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

OUTCOMES: tuple[str, ...] = (
    "completed",
    "client_aborted",
    "client_resumed",  # the client dropped a resumable stream and came back within its window (docs/resume.md)
    "upstream_interrupted",
    "shed",
    "rate_limited",
    "expired",
    "rejected",
    "error",
    "cached",
)
ABORT_REASONS: tuple[str, ...] = ("client_disconnect", "deadline", "admin", "hedge_loser")
TOKEN_KINDS: tuple[str, ...] = ("prompt", "completion")

TTFT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 20.0, 60.0)
ITL_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.2, 0.5, 1.0, 2.0)
DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0)
QUEUE_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 600.0)
CANCEL_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
RESUME_GAP_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
WORKFLOW_BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


class RequestSeries:
    """The label children of one (model, class) pair, bound once and reused by every request of that pair."""

    __slots__ = ("completion_tokens", "duration", "itl", "outcomes", "prompt_tokens", "ttft")

    def __init__(self, metrics: GatewayMetrics, model: str, klass: str) -> None:
        self.outcomes = {o: metrics.requests.labels(model, klass, o) for o in OUTCOMES}
        self.ttft = metrics.ttft.labels(model, klass)
        self.itl = metrics.itl.labels(model, klass)
        self.duration = metrics.duration.labels(model, klass)
        self.prompt_tokens = metrics.tokens.labels(model, klass, "prompt")
        self.completion_tokens = metrics.tokens.labels(model, klass, "completion")


class GatewayMetrics:
    """All gateway metrics on one registry. Traffic engineers add their metrics here, not in their modules."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("tokenyard_requests", "Requests by model, class and outcome.",
                                ("model", "class", "outcome"), registry=r)
        self.ttft = Histogram("tokenyard_time_to_first_token_seconds",
                              "Gateway arrival to the first token relayed to the client.",
                              ("model", "class"), buckets=TTFT_BUCKETS, registry=r)
        self.itl = Histogram("tokenyard_inter_token_latency_seconds",
                             "Gap between consecutive streamed token events relayed to the client.",
                             ("model", "class"), buckets=ITL_BUCKETS, registry=r)
        self.duration = Histogram("tokenyard_request_duration_seconds", "Gateway arrival to the end of the response.",
                                  ("model", "class"), buckets=DURATION_BUCKETS, registry=r)
        self.queue_wait = Histogram("tokenyard_queue_wait_seconds", "Time spent waiting in the gateway's queues.",
                                    ("class",), buckets=QUEUE_BUCKETS, registry=r)
        self.queue_depth = Gauge("tokenyard_queue_depth", "Requests waiting in the gateway's queues.",
                                 ("class",), registry=r)
        self.upstream_aborts = Counter("tokenyard_upstream_aborts", "Upstream requests closed early, by reason.",
                                       ("reason",), registry=r)
        self.cancel_latency = Histogram("tokenyard_cancel_latency_seconds",
                                        "From a client disconnect (or abort) seen to the upstream request closed.",
                                        buckets=CANCEL_BUCKETS, registry=r)
        self.tokens = Counter("tokenyard_tokens", "Tokens by model, class and kind (prompt, completion).",
                              ("model", "class", "kind"), registry=r)
        self.degradation_level = Gauge("tokenyard_degradation_level", "Current degradation ladder level.",
                                       registry=r)
        self.degradation_actions = Counter("tokenyard_degradation_actions", "Degradation actions applied.",
                                           ("action",), registry=r)
        self.workflow_duration = Histogram("tokenyard_workflow_duration_seconds",
                                           "Duration of a tool-chain workflow.", ("workflow",),
                                           buckets=WORKFLOW_BUCKETS, registry=r)
        self.retrieval_requests = Counter("tokenyard_retrieval_requests", "Retrieval requests by outcome.",
                                          ("outcome",), registry=r)
        self.backend_up = Gauge("tokenyard_backend_up", "1 when the backend is healthy, else 0.", ("backend",),
                                registry=r)
        self.backend_inflight = Gauge("tokenyard_backend_inflight", "Requests in flight to the backend.",
                                      ("backend",), registry=r)
        self.cache_requests = Counter("tokenyard_cache_requests", "Cache lookups by kind and result.",
                                      ("kind", "result"), registry=r)
        self.cache_tokens_saved = Counter("tokenyard_cache_tokens_saved", "Tokens served from the cache, by kind.",
                                          ("kind",), registry=r)
        self.upstream_phase = Histogram("tokenyard_upstream_phase_seconds",
                                        "Each request's time by phase (queue, connect, network, upstream_queue, "
                                        "prefill, decode, upstream) per backend.", ("backend", "phase"),
                                        buckets=QUEUE_BUCKETS, registry=r)
        self.upstream_retransmits = Counter("tokenyard_upstream_tcp_retransmits",
                                            "TCP segments retransmitted on upstream connections while answering "
                                            "(TCP_INFO).", ("backend",), registry=r)
        # The client path (docs/resume.md): disconnects, reconnects and resumes of streams, their cost.
        self.stream_disconnects = Counter("tokenyard_stream_disconnects", "Clients that left a stream mid-answer, "
                                          "by class and whether the stream stays resumable.",
                                          ("class", "resumable"), registry=r)
        self.stream_reconnects = Counter("tokenyard_stream_reconnects", "Resume requests (GET /v1/streams/{id}) by "
                                         "result: resumed, not_found, overflow, invalid.", ("result",), registry=r)
        self.stream_resumes = Counter("tokenyard_stream_resumes", "Dropped streams resumed within their window.",
                                      ("class",), registry=r)
        self.resume_gap = Histogram("tokenyard_resume_gap_seconds", "Time lost per interruption: client gone "
                                    "to client back on a resumed stream.", ("class",), buckets=RESUME_GAP_BUCKETS,
                                    registry=r)
        self.resume_window_tokens = Counter("tokenyard_resume_window_tokens", "Tokens generated for nobody: during "
                                            "resume windows that closed without a reconnect.", ("class",), registry=r)
        self.client_requests = Counter("tokenyard_client_requests", "Requests by the client's HTTP protocol and TLS "
                                       "version (none: plain HTTP).", ("protocol", "tls"), registry=r)
        self.aborts_by_reason = {reason: self.upstream_aborts.labels(reason) for reason in ABORT_REASONS}
        self._series: dict[tuple[str, str], RequestSeries] = {}

    def series(self, model: str, klass: str) -> RequestSeries:
        """The bound children of (model, class); created on first use, then a dict lookup."""
        key = (model, klass)
        found = self._series.get(key)
        if found is None:
            found = self._series[key] = RequestSeries(self, model, klass)
        return found

    def render(self) -> bytes:
        """The Prometheus text exposition of this registry."""
        return generate_latest(self.registry)
