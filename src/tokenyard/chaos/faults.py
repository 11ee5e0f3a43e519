"""The chaos proxy's fault model: what to do to each direction of a connection, and the per-connection plan.

Pure: no I/O, no clock. The proxy draws one :class:`ConnectionPlan` per accepted connection from a seeded
``random.Random``, so a given seed and connection order give the same faults every run.

Directions: ``up`` is client -> server (what the client sends), ``down`` is server -> client.
"""

from __future__ import annotations

import random
from typing import Any

import msgspec


class DirectionFaults(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Faults for one direction. Every field defaults to "no fault".

    ``probability`` is the chance that the shaping faults (latency, jitter, bandwidth, slicing) apply to a given
    connection. ``reset_prob`` and ``blackhole_prob`` are separate per-connection chances.
    """

    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    bandwidth_kbps: float = 0.0
    """Cap in kilobits per second (1 kbit = 1000 bits); 0 means uncapped."""
    slice_bytes: int = 0
    """Write each chunk in segments of at most this many bytes; 0 means no slicing."""
    slice_delay_ms: float = 1.0
    """Pause between two segments of a sliced chunk."""
    probability: float = 1.0
    reset_prob: float = 0.0
    """Chance per connection that it is reset (RST to both peers) in this direction."""
    reset_after_bytes: int = 0
    """Where a chosen reset happens: after this many bytes have been forwarded in this direction."""
    blackhole_prob: float = 0.0
    """Chance per connection that this direction's bytes are read and discarded, never forwarded."""
    close_after_bytes: int | None = None
    """Close the connection gracefully (FIN to both peers) once this many bytes went through this direction."""

    def validate(self) -> list[tuple[str, str]]:
        """Problems as ``(field, message)`` pairs; empty when the faults are usable."""
        issues: list[tuple[str, str]] = []
        for name in ("latency_ms", "jitter_ms", "bandwidth_kbps", "slice_delay_ms"):
            if getattr(self, name) < 0:
                issues.append((name, "must be >= 0"))
        for name in ("probability", "reset_prob", "blackhole_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                issues.append((name, "must be between 0 and 1"))
        if self.slice_bytes < 0:
            issues.append(("slice_bytes", "must be >= 0"))
        if self.reset_after_bytes < 0:
            issues.append(("reset_after_bytes", "must be >= 0"))
        if self.close_after_bytes is not None and self.close_after_bytes < 0:
            issues.append(("close_after_bytes", "must be >= 0"))
        return issues

    @property
    def shapes(self) -> bool:
        """Whether any shaping fault is configured (so a connection needs a probability draw for them)."""
        return bool(self.latency_ms or self.jitter_ms or self.bandwidth_kbps or self.slice_bytes)


class Faults(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The proxy's whole fault configuration: one :class:`DirectionFaults` per direction."""

    up: DirectionFaults = DirectionFaults()
    down: DirectionFaults = DirectionFaults()

    def validate(self) -> list[tuple[str, str]]:
        return [(f"up.{key}", msg) for key, msg in self.up.validate()] + [
            (f"down.{key}", msg) for key, msg in self.down.validate()
        ]


class FaultsInvalid(ValueError):
    """Raised by :func:`parse_faults` with every problem found, each as ``(key_path, message)``."""

    def __init__(self, issues: list[tuple[str, str]]) -> None:
        self.issues = issues
        super().__init__("; ".join(f"{key}: {msg}" for key, msg in issues))


def parse_faults(body: bytes | dict[str, Any]) -> Faults:
    """Parse the JSON body of ``POST /faults`` (or a mapping). ``{"clear": true}`` means no faults."""
    try:
        raw: Any = msgspec.json.decode(body) if isinstance(body, bytes) else body
    except msgspec.DecodeError as exc:
        raise FaultsInvalid([("body", f"not valid JSON: {exc}")]) from exc
    if not isinstance(raw, dict):
        raise FaultsInvalid([("body", "must be a JSON object")])
    if raw.get("clear") is True and len(raw) == 1:
        return Faults()
    try:
        faults = msgspec.convert(raw, Faults)
    except msgspec.ValidationError as exc:
        raise FaultsInvalid([("body", str(exc))]) from exc
    issues = faults.validate()
    if issues:
        raise FaultsInvalid(issues)
    return faults


def faults_to_dict(faults: Faults) -> dict[str, Any]:
    """The JSON shape served by ``GET /faults``."""
    result: dict[str, Any] = msgspec.to_builtins(faults)
    return result


class DirectionPlan(msgspec.Struct, frozen=True):
    """What happens to one direction of one connection, decided when it is accepted."""

    latency_s: float = 0.0
    jitter_s: float = 0.0
    bytes_per_s: float = 0.0
    slice_bytes: int = 0
    slice_delay_s: float = 0.0
    reset_after: int | None = None
    """Reset both peers once this many bytes were forwarded; None: no reset."""
    close_after: int | None = None
    blackhole: bool = False
    jitter_seed: int = 0


class ConnectionPlan(msgspec.Struct, frozen=True):
    up: DirectionPlan
    down: DirectionPlan


def plan_direction(faults: DirectionFaults, rng: random.Random) -> DirectionPlan:
    """Draw one direction's plan. Always consumes the same number of draws, so plans stay reproducible."""
    shaped = rng.random() < faults.probability
    reset = rng.random() < faults.reset_prob
    blackhole = rng.random() < faults.blackhole_prob
    jitter_seed = rng.getrandbits(32)
    return DirectionPlan(
        latency_s=faults.latency_ms / 1000 if shaped else 0.0,
        jitter_s=faults.jitter_ms / 1000 if shaped else 0.0,
        bytes_per_s=faults.bandwidth_kbps * 1000 / 8 if shaped else 0.0,
        slice_bytes=faults.slice_bytes if shaped else 0,
        slice_delay_s=faults.slice_delay_ms / 1000,
        reset_after=faults.reset_after_bytes if reset else None,
        close_after=faults.close_after_bytes,
        blackhole=blackhole,
        jitter_seed=jitter_seed,
    )


def plan_connection(faults: Faults, rng: random.Random) -> ConnectionPlan:
    """Draw the plan for one accepted connection (upstream first, then downstream)."""
    return ConnectionPlan(up=plan_direction(faults.up, rng), down=plan_direction(faults.down, rng))
