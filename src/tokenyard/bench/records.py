"""What one run measured: a record per request and per user action (workflow). Plain data, no I/O.

Times are seconds as offsets from the start of the run. Latencies (TTFT, end-to-end) are measured from the
*intended* send time, so a client that falls behind its schedule shows up as latency instead of hiding it
(coordinated omission); ``sent_s - intended_s`` is the send lag, reported on its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Outcomes of a request, as CONTRACTS.md's tokenyard_requests_total names them where the two overlap.
OUTCOMES = ("completed", "client_aborted", "shed", "rate_limited", "error", "upstream_interrupted", "unfinished")


@dataclass
class RequestRecord:
    action: int
    hop: int
    workflow: str
    cls: str
    tenant: str
    intended_s: float
    sent_s: float = 0.0
    end_s: float = 0.0
    status: int | None = None
    outcome: str = "unfinished"
    ttft_s: float | None = None
    itls_s: list[float] = field(default_factory=list)
    e2e_s: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    retrieval_fallback: bool = False
    degraded: str | None = None  # the target's x-tokenyard-degraded response header (actions applied)
    error: str | None = None

    @property
    def tpot_s(self) -> float | None:
        """Mean time per output token after the first (vLLM's TPOT), None with fewer than two tokens."""
        if self.ttft_s is None or self.e2e_s is None or self.completion_tokens < 2:
            return None
        return (self.e2e_s - self.ttft_s) / (self.completion_tokens - 1)

    def to_dict(self) -> dict[str, object]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass
class WorkflowRecord:
    action: int
    workflow: str
    kind: str
    cls: str
    intended_s: float
    end_s: float = 0.0
    completed: bool = False
    retrieval: str | None = None  # "hit", "fallback" or None when the action made no retrieval call
    tool_errors: int = 0

    @property
    def latency_s(self) -> float | None:
        """Completion latency of the whole action, from its intended start; None unless every step completed."""
        return self.end_s - self.intended_s if self.completed else None

    def to_dict(self) -> dict[str, object]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}
