"""Picker names (as written in config, ``models.<name>.picker``) mapped to factories.

The registry is built by a function on demand, never at import time, so tests and embedders can extend a
copy without touching shared state.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tokenyard.policy.consistent_hash import DEFAULT_LOAD_FACTOR, DEFAULT_VNODES
from tokenyard.policy.pickers.base import Picker
from tokenyard.policy.pickers.least_load import LeastLoadPicker
from tokenyard.policy.pickers.locality import DEFAULT_SPILL_AT, LocalityPicker
from tokenyard.policy.pickers.p2c import PowerOfTwoPicker
from tokenyard.policy.pickers.prefix_affinity import DEFAULT_BLOCK_TOKENS, DEFAULT_PREFIX_TOKENS, PrefixAffinityPicker
from tokenyard.policy.pickers.round_robin import RoundRobinPicker
from tokenyard.policy.pickers.session import DEFAULT_SESSION_HEADER, SessionAffinityPicker
from tokenyard.policy.pickers.weighted import WeightedPicker


@dataclass(frozen=True, slots=True)
class PickerOptions:
    """Tuning shared by the pickers; each factory reads the fields it needs. Defaults are the documented ones."""

    seed: int | None = None
    clock: Callable[[], float] = time.monotonic
    tokens_per_request: float = 512.0
    stale_after_s: float = 2.0
    load_factor: float = DEFAULT_LOAD_FACTOR
    vnodes: int = DEFAULT_VNODES
    prefix_tokens: int = DEFAULT_PREFIX_TOKENS
    block_tokens: int = DEFAULT_BLOCK_TOKENS
    session_header: str = DEFAULT_SESSION_HEADER
    spill_at: float = DEFAULT_SPILL_AT
    rng: random.Random | None = field(default=None, compare=False)

    def random(self) -> random.Random:
        """The RNG to use: the one given, else a new one seeded with ``seed`` (None: from the OS)."""
        return self.rng if self.rng is not None else random.Random(self.seed)


PickerFactory = Callable[[PickerOptions], Picker]


def build_picker_registry() -> dict[str, PickerFactory]:
    """A fresh mapping from every config picker name to its factory."""
    return {
        "round-robin": lambda o: RoundRobinPicker(),
        "weighted": lambda o: WeightedPicker(),
        "least-load": lambda o: LeastLoadPicker(o.random(), o.tokens_per_request),
        "p2c": lambda o: PowerOfTwoPicker(o.random(), o.clock, o.stale_after_s, o.tokens_per_request),
        "prefix-affinity": lambda o: PrefixAffinityPicker(
            o.random(), o.load_factor, o.vnodes, o.prefix_tokens, o.block_tokens
        ),
        "session": lambda o: SessionAffinityPicker(o.random(), o.session_header, o.vnodes),
        "locality": lambda o: LocalityPicker(o.random(), o.spill_at, o.tokens_per_request),
    }


def create_picker(
    name: str, options: PickerOptions | None = None, registry: dict[str, PickerFactory] | None = None
) -> Picker:
    """A new picker by config name; raises ``ValueError`` naming the known pickers for an unknown one."""
    table = registry if registry is not None else build_picker_registry()
    factory = table.get(name)
    if factory is None:
        raise ValueError(f"unknown picker {name!r}; known: {', '.join(sorted(table))}")
    return factory(options if options is not None else PickerOptions())
