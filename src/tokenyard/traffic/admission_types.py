"""Value types of the admission engine: the ticket a request brings, the refusal, the event callback.

The ticket and the event are built for every request: frozen msgspec Structs, several times cheaper to build
than frozen dataclasses (same keyword/positional construction, equality and immutability).
"""

from __future__ import annotations

import msgspec

from tokenyard.policy.shedding import ShedTier

# Event kinds passed to ``on_event`` (the gateway turns them into metrics at the seam).
DISPATCHED = "dispatched"
SHED = "shed"
REJECTED = "rejected"
EXPIRED = "expired"
CANCELLED = "cancelled"

# Reasons besides the shedding ones (policy.shedding): early deadline rejection, queue TTL, shutdown.
DEADLINE_UNMEETABLE = "deadline_unmeetable"
DEADLINE_UNMEETABLE_AT_DISPATCH = "deadline_unmeetable_at_dispatch"
QUEUE_TIMEOUT = "queue_timeout"
DEADLINE_EXCEEDED = "deadline_exceeded"
SHUTTING_DOWN = "shutting_down"


class AdmissionTicket(msgspec.Struct, frozen=True):
    """What admission needs to know about one request.

    ``priority`` is the class's band (lower is served first); ``pool`` the model/pool whose concurrency it
    needs. ``queue_timeout_s`` is the class queue TTL; ``deadline_s`` the client's ``x-tokenyard-deadline-ms``
    in seconds, relative to ``arrival``; ``ttft_slo_s`` the class TTFT objective, used for early rejection of
    the tiers in ``AdmissionSettings.slo_reject_tiers``. ``arrival`` is on the controller's clock (None: now).
    """

    request_id: str
    tenant: str
    klass: str
    priority: int
    pool: str
    prompt_tokens: int = 0
    max_tokens: int | None = None
    queue_timeout_s: float = 10.0
    deadline_s: float | None = None
    ttft_slo_s: float | None = None
    tier: ShedTier = ShedTier.STANDARD
    weight: float = 1.0
    arrival: float | None = None


class Rejected(Exception):
    """Admission refused the request. ``status`` 429 (shed / deadline cannot be met: retry later), 503 (queue
    TTL ran out, shutting down) or 504 (the client's deadline passed in the queue); ``retry_after_s`` whole
    seconds for ``Retry-After`` (None: do not send one)."""

    def __init__(self, reason: str, status: int, retry_after_s: int | None, message: str = "") -> None:
        super().__init__(message or reason)
        self.reason = reason
        self.status = status
        self.retry_after_s = retry_after_s
        self.message = message or reason


class AdmissionEvent(msgspec.Struct, frozen=True):
    """One admission decision, for metrics and logs: ``kind`` one of DISPATCHED, SHED, REJECTED, EXPIRED,
    CANCELLED; ``reason`` why; ``queue_wait_s`` time spent queued (0 when refused on arrival)."""

    kind: str
    request_id: str
    klass: str
    pool: str
    reason: str
    queue_wait_s: float = 0.0
    status: int | None = None
