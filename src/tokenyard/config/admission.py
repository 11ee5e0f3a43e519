"""Admission control and the degradation ladder: the knobs of ``tokenyard.traffic`` (docs/admission.md)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from tokenyard.config.base import NonNegativeInt, PositiveInt, Section

PositiveFloat = Annotated[float, msgspec.Meta(gt=0.0)]
DegradationAction = Literal["compress_retrieval", "narrow_tools", "concise", "fallback_model"]
DEGRADATION_ACTIONS: tuple[DegradationAction, ...] = ("compress_retrieval", "narrow_tools", "concise",
                                                      "fallback_model")


def _premium_offset() -> dict[str, int]:
    return {"premium": 1}


def _premium_concise() -> dict[str, int]:
    return {"premium": 512}


class AdmissionConfig(Section, frozen=True, kw_only=True):
    """Flow control in front of the router: per-class queues, adaptive per-endpoint concurrency limits.

    ``enabled`` False sends every request straight to the router in arrival order (the model servers queue
    it: FIFO). ``initial_limit``/``min_limit``/``max_limit`` bound each endpoint's adaptive concurrency limit.
    ``queue_caps`` caps a class's queue (``default_queue_cap`` for the others). ``critical_reserve`` is the
    share of each pool's concurrency only the critical tier (premium) may use. ``endpoint_request_capacity``
    / ``endpoint_token_capacity`` turn on the instant saturation signal (the gateway's own in-flight requests
    and tokens per endpoint). ``scrape`` reads each endpoint's ``/metrics`` every ``scrape_interval_ms``; a
    sample older than ``stale_after_ms`` counts as saturated.
    """

    enabled: bool = True
    initial_limit: PositiveInt = 64
    min_limit: PositiveInt = 2
    max_limit: PositiveInt = 256
    queue_caps: dict[str, NonNegativeInt] = msgspec.field(default_factory=dict)
    default_queue_cap: NonNegativeInt = 10_000
    critical_reserve: Annotated[float, msgspec.Meta(ge=0.0, le=0.9)] = 0.0
    endpoint_request_capacity: PositiveInt | None = None
    endpoint_token_capacity: PositiveInt | None = None
    scrape: bool = True
    scrape_interval_ms: PositiveInt = 500
    stale_after_ms: PositiveInt = 2_000

    def __post_init__(self) -> None:
        if not self.min_limit <= self.initial_limit <= self.max_limit:
            raise ValueError("expected min_limit <= initial_limit <= max_limit")


class DegradationConfig(Section, frozen=True, kw_only=True):
    """The degradation ladder: which actions, for which classes, and when the level moves.

    Level n applies the first n of ``actions`` (in ladder order). ``classes`` None degrades every class;
    ``class_offsets`` makes a class lag the ladder (premium by one level). The level goes up one step when the
    pressure is >= ``up_threshold`` and ``up_dwell_ms`` passed since the last change, down one step after
    ``down_dwell_ms`` at <= ``down_threshold``.
    """

    enabled: bool = True
    actions: tuple[DegradationAction, ...] = DEGRADATION_ACTIONS
    classes: tuple[str, ...] | None = None
    class_offsets: dict[str, NonNegativeInt] = msgspec.field(default_factory=_premium_offset)
    up_threshold: PositiveFloat = 1.0
    down_threshold: PositiveFloat = 0.7
    up_dwell_ms: NonNegativeInt = 5_000
    down_dwell_ms: NonNegativeInt = 15_000
    window_ms: PositiveInt = 30_000
    queue_wait_target_ms: PositiveInt = 1_000
    saturation_target: PositiveFloat = 1.0
    top_k_cap: PositiveInt = 3
    max_tools: NonNegativeInt = 1
    concise_max_tokens: dict[str, PositiveInt] = msgspec.field(default_factory=_premium_concise)
    default_concise_max_tokens: PositiveInt = 256
    concise_instruction: str = "Answer briefly and to the point; omit preamble and repetition."

    def __post_init__(self) -> None:
        if self.down_threshold >= self.up_threshold:
            raise ValueError("expected down_threshold < up_threshold (the gap is the hysteresis)")
