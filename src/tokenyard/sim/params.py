"""Timing-model parameters and the named profiles (``fast``, ``large``).

Every field can be overridden by a CLI flag of the same name (``max_num_seqs`` -> ``--max-num-seqs``) or by a
fleet-file ``overrides`` entry. The formulas that use them are in ``scheduler.step_time_ms`` and docs/simulator.md.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

BLOCK_SIZE = 16  # tokens per KV block, as vLLM's default
OUTPUT_LEN_DISTRIBUTIONS = ("fixed", "uniform", "exponential")


@dataclass(frozen=True)
class SimParams:
    """The model of one simulated engine. Times in milliseconds."""

    model_name: str = "sim-large"
    max_num_seqs: int = 256  # running sequences per step
    max_num_batched_tokens: int = 8192  # token budget per step
    max_queue: int = 1024  # waiting requests (incl. in the front end) before 429
    kv_blocks: int = 24_000  # KV cache size in blocks of BLOCK_SIZE tokens
    max_model_len: int = 32_768  # prompt + output tokens per request
    ttft_ms: float = 100.0  # time to first token of an empty prompt, alone, no load
    itl_ms: float = 12.0  # decode step time with one running sequence
    load_factor: float = 2.0  # step time multiplier when max_num_seqs sequences run
    prefill_ms_per_token: float = 0.04  # per uncached prompt token in a step
    output_len: int = 128  # output tokens when the request gives no max_tokens
    output_len_dist: str = "fixed"  # fixed | uniform | exponential (mean output_len, stops early)
    jitter: float = 0.0  # step time multiplied by uniform(1 - jitter, 1 + jitter)
    seed: int = 0
    abort_on_disconnect: bool = True

    @property
    def frontend_ms(self) -> float:
        """Per-request API-server delay before the engine sees the request (tokenising, scheduling).

        ``ttft_ms`` is what a user measures for an empty prompt at no load: this delay plus one step.
        """
        return max(0.0, self.ttft_ms - self.itl_ms)

    def replace(self, **overrides: Any) -> SimParams:
        """A copy with ``overrides`` applied and validated (ValueError names the bad field)."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"unknown simulator parameter(s): {', '.join(unknown)}")
        params = dataclasses.replace(self, **overrides)
        params.validate()
        return params

    def validate(self) -> None:
        for name in ("max_num_seqs", "max_num_batched_tokens", "kv_blocks", "max_model_len", "output_len"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.max_queue < 0:
            raise ValueError("max_queue must be >= 0")
        for name in ("ttft_ms", "itl_ms", "prefill_ms_per_token"):
            if float(getattr(self, name)) < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.load_factor < 1.0:
            raise ValueError("load_factor must be >= 1")
        if not 0.0 <= self.jitter < 1.0:
            raise ValueError("jitter must be in [0, 1)")
        if self.output_len_dist not in OUTPUT_LEN_DISTRIBUTIONS:
            raise ValueError(f"output_len_dist must be one of {', '.join(OUTPUT_LEN_DISTRIBUTIONS)}")

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


PROFILES: dict[str, SimParams] = {
    # Near-zero latency: measures the overhead of whatever sits in front of the simulator.
    "fast": SimParams(
        model_name="sim-fast", max_num_seqs=1024, max_num_batched_tokens=1 << 20, max_queue=100_000,
        kv_blocks=1_000_000, ttft_ms=0.0, itl_ms=0.0, load_factor=1.0, prefill_ms_per_token=0.0,
        output_len=16, jitter=0.0,
    ),
    # An 8B model on one H100 behind vLLM's API: ~100 ms TTFT for a short prompt, ~12 ms/token at low load,
    # 24 ms/token with 256 sequences running, ~40 us per prefilled token (1k tokens ~ 40 ms).
    "large": SimParams(jitter=0.05),
}


def profile(name: str) -> SimParams:
    """The named profile; ValueError lists the known names."""
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r}; known: {', '.join(sorted(PROFILES))}") from None
