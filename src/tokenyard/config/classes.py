"""Traffic classes: priority, latency objectives and queueing limits, and the built-in defaults."""

from __future__ import annotations

from tokenyard.config.base import NonNegativeInt, PositiveInt, Section


class ClassConfig(Section, frozen=True, kw_only=True):
    """A traffic class. A lower ``priority`` number is served first.

    ``ttft_slo_ms``/``itl_slo_ms`` are the latency objectives (None: none); ``queue_timeout_ms`` is how long a
    request may wait in the gateway's queue; ``resume_window_ms`` > 0 keeps a stream resumable that long after a
    client drops; ``max_tokens_cap`` caps ``max_tokens`` for the class; ``sheddable`` False means the class is
    never shed for load (it can still time out in its queue). ``rpm``/``tpm``/``max_concurrency`` limit the
    class as a whole, across tenants (None: unlimited).
    """

    priority: NonNegativeInt
    ttft_slo_ms: PositiveInt | None = None
    itl_slo_ms: PositiveInt | None = None
    queue_timeout_ms: PositiveInt = 10_000
    resume_window_ms: NonNegativeInt = 0
    max_tokens_cap: PositiveInt | None = None
    sheddable: bool = True
    rpm: PositiveInt | None = None
    tpm: PositiveInt | None = None
    max_concurrency: PositiveInt | None = None


DEFAULT_CLASS_NAME = "standard"


def default_classes() -> dict[str, ClassConfig]:
    """The classes used when the config has no ``classes`` section: premium, standard and batch."""
    return {
        "premium": ClassConfig(priority=0, ttft_slo_ms=500, queue_timeout_ms=2_000, resume_window_ms=5_000),
        "standard": ClassConfig(priority=1, ttft_slo_ms=2_000, queue_timeout_ms=10_000),
        "batch": ClassConfig(priority=2, queue_timeout_ms=600_000),
    }
