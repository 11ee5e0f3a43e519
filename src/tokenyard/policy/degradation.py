"""The degradation ladder: under load, spend less per request so more requests meet their SLO.

Levels (each includes the ones below it):

0. nothing
1. ``compress_retrieval``: cap ``top_k`` of retrieval calls; chat requests carry a hint header
2. ``narrow_tools``: keep at most ``max_tools`` tools (0 removes tools altogether)
3. ``concise``: cap ``max_tokens`` per class and prepend a brief-answer system instruction
4. ``fallback_model``: route to the configured smaller fallback model

The level follows a *pressure* signal, ``max(ttft_p95 / ttft_slo, queue_wait_p95 / queue_wait_target,
saturation / saturation_target)`` (>= 1 means some SLO is being missed), with hysteresis: one step up when
pressure >= ``up_threshold`` and at least ``up_dwell_s`` passed since the last change, one step down when
pressure <= ``down_threshold`` for ``down_dwell_s``. Between the thresholds the level holds, so a noisy
signal sitting at a threshold cannot make it flap. A class with an offset (premium: 1) lags the ladder by
that many levels, so standard traffic degrades first. An admin pin overrides the signal.

The transforms are pure functions on a parsed JSON body (a dict, modified in place); each returns whether
it changed anything, so ``x-tokenyard-degraded`` names only actions that actually took effect.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

COMPRESS_RETRIEVAL = "compress_retrieval"
NARROW_TOOLS = "narrow_tools"
CONCISE = "concise"
FALLBACK_MODEL = "fallback_model"
LEVEL_ACTIONS: tuple[str, ...] = (COMPRESS_RETRIEVAL, NARROW_TOOLS, CONCISE, FALLBACK_MODEL)
MAX_LEVEL = len(LEVEL_ACTIONS)
TOP_K_HINT_HEADER = "x-tokenyard-retrieval-top-k"
DEFAULT_CONCISE_INSTRUCTION = "Answer briefly and to the point; omit preamble and repetition."


@dataclass(frozen=True)
class DegradationSettings:
    """Which actions run, how the level moves and what each action does. Defaults documented in
    docs/admission.md."""

    enabled_actions: frozenset[str] = frozenset(LEVEL_ACTIONS)
    classes: frozenset[str] | None = None  # None: every class may be degraded
    class_offsets: Mapping[str, int] = field(default_factory=lambda: {"premium": 1})
    up_threshold: float = 1.0
    down_threshold: float = 0.7
    up_dwell_s: float = 5.0
    down_dwell_s: float = 15.0
    queue_wait_target_s: float = 1.0
    saturation_target: float = 1.0
    top_k_cap: int = 3
    max_tools: int = 1
    concise_max_tokens: Mapping[str, int] = field(default_factory=lambda: {"premium": 512})
    default_concise_max_tokens: int = 256
    concise_instruction: str = DEFAULT_CONCISE_INSTRUCTION


def pressure(
    *,
    ttft_ratio: float = 0.0,
    queue_wait_s: float = 0.0,
    saturation: float = 0.0,
    settings: DegradationSettings,
) -> float:
    """Combine the live signals into one number; >= 1 means at least one target is exceeded."""
    return max(
        ttft_ratio,
        queue_wait_s / settings.queue_wait_target_s if settings.queue_wait_target_s > 0 else 0.0,
        saturation / settings.saturation_target if settings.saturation_target > 0 else 0.0,
    )


class DegradationLadder:
    """The level state machine with hysteresis, dwell times and an admin pin. Pure: ``now`` passed in."""

    def __init__(self, settings: DegradationSettings | None = None, *, now: float = 0.0) -> None:
        self.settings = settings or DegradationSettings()
        self.level = 0
        self.pinned: int | None = None
        self._last_change = now
        self._low_since: float | None = None

    def update(self, pressure_value: float, now: float) -> int:
        """Feed one pressure observation; returns the (unpinned) level after it."""
        s = self.settings
        if pressure_value <= s.down_threshold:
            if self._low_since is None:
                self._low_since = now
        else:
            self._low_since = None
        if pressure_value >= s.up_threshold:
            if self.level < MAX_LEVEL and now - self._last_change >= s.up_dwell_s:
                self.level += 1
                self._last_change = now
        elif (
            self._low_since is not None
            and self.level > 0
            and now - self._low_since >= s.down_dwell_s
            and now - self._last_change >= s.down_dwell_s
        ):
            self.level -= 1
            self._last_change = now
        return self.level

    def pin(self, level: int | None) -> None:
        """Admin override: hold ``level`` regardless of the signal; None resumes automatic control."""
        if level is not None and not 0 <= level <= MAX_LEVEL:
            raise ValueError(f"level must be within 0..{MAX_LEVEL}")
        self.pinned = level

    @property
    def effective_level(self) -> int:
        return self.level if self.pinned is None else self.pinned

    def level_for(self, klass: str) -> int:
        """The level a class sees: the ladder level less its offset; 0 for classes not degraded."""
        s = self.settings
        if s.classes is not None and klass not in s.classes:
            return 0
        return max(0, self.effective_level - s.class_offsets.get(klass, 0))

    def actions_for(self, klass: str) -> tuple[str, ...]:
        """Enabled actions at the class's level, in ladder order."""
        level = self.level_for(klass)
        return tuple(a for a in LEVEL_ACTIONS[:level] if a in self.settings.enabled_actions)


# ---- transforms (pure, in place on a parsed JSON body) -----------------------------------------------------
def cap_top_k(body: dict[str, Any], cap: int) -> bool:
    """Retrieval call ``{query, top_k}``: cap ``top_k`` (set it when absent). True when it changed."""
    current = body.get("top_k")
    if isinstance(current, int) and not isinstance(current, bool) and current <= cap:
        return False
    body["top_k"] = cap
    return True


def narrow_tools(body: dict[str, Any], max_tools: int) -> bool:
    """Keep at most ``max_tools`` tools (the one ``tool_choice`` names first, else the first listed);
    with 0 remove tools and tool_choice. True when it changed."""
    tools = body.get("tools")
    if not isinstance(tools, list) or len(tools) <= max_tools:
        return False
    if max_tools <= 0:
        body.pop("tools", None)
        body.pop("tool_choice", None)
        body.pop("parallel_tool_calls", None)
        return True
    chosen = _named_tool(body.get("tool_choice"))
    keep = [t for t in tools if _tool_name(t) == chosen][:1] if chosen else []
    keep += [t for t in tools if t not in keep][: max_tools - len(keep)]
    body["tools"] = keep
    if max_tools == 1 and "parallel_tool_calls" in body:
        body["parallel_tool_calls"] = False
    return True


def _named_tool(choice: Any) -> str | None:
    if isinstance(choice, dict):
        fn = choice.get("function")
        if isinstance(fn, dict) and isinstance(fn.get("name"), str):
            return str(fn["name"])
    return None


def _tool_name(tool: Any) -> str | None:
    if isinstance(tool, dict):
        fn = tool.get("function")
        if isinstance(fn, dict) and isinstance(fn.get("name"), str):
            return str(fn["name"])
    return None


def make_concise(body: dict[str, Any], max_tokens: int, instruction: str) -> bool:
    """Cap ``max_tokens`` / ``max_completion_tokens`` (set ``max_tokens`` when neither is given) and, for
    chat bodies, prepend a system message with ``instruction``. True when it changed."""
    changed = False
    present = [k for k in ("max_tokens", "max_completion_tokens") if body.get(k) is not None]
    for key in present:
        value = body[key]
        if not isinstance(value, int) or value > max_tokens:
            body[key] = max_tokens
            changed = True
    if not present:
        body["max_tokens"] = max_tokens
        changed = True
    messages = body.get("messages")
    if isinstance(messages, list) and instruction:
        first = messages[0] if messages else None
        already = isinstance(first, dict) and first.get("role") == "system" and first.get("content") == instruction
        if not already:
            messages.insert(0, {"role": "system", "content": instruction})
            changed = True
    return changed


def swap_model(body: dict[str, Any], fallback_model: str | None) -> bool:
    """Replace ``model`` with the fallback; False when none is configured or it is already the fallback."""
    if not fallback_model or body.get("model") == fallback_model:
        return False
    body["model"] = fallback_model
    return True
