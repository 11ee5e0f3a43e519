"""Pure lifecycle policy (no I/O; time is an argument): conditions, control state, supersession, fan-out limits,
and the "is this event still valuable?" predicate. The worker asks these before and during inference."""

from __future__ import annotations

import importlib
from collections import Counter, OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from tokenyard.pipeline.event import Event
from tokenyard.pipeline.logs import id_rank
from tokenyard.pipeline.spec import Condition, ValuableSpec

_MISSING = object()
MAX_REMEMBERED = 100_000  # aborted ids and superseded keys kept (oldest forgotten first)


def lookup(fields: Mapping[str, Any], path: str) -> Any:
    """``"a.b"`` reaches into nested objects; a missing field is ``_MISSING``."""
    value: Any = fields
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return _MISSING
        value = value[part]
    return value


def matches(cond: Condition, fields: Mapping[str, Any]) -> bool:
    value = lookup(fields, cond.field)
    ok = True
    if cond.exists is not None:
        ok = ok and ((value is not _MISSING) == cond.exists)
    if cond.equals is not None:
        ok = ok and value == cond.equals
    if cond.one_of is not None:
        ok = ok and value in cond.one_of
    for bound, above in ((cond.min, True), (cond.max, False)):
        if bound is None:
            continue
        numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
        ok = ok and numeric and (value >= bound if above else value <= bound)
    return ok != cond.negate


class ControlState:
    """What the control stream said: pause/resume, aborts by event id, and aborts by key.

    An abort by key applies to events of that key created at or before the abort (later events of the key run).
    """

    def __init__(self) -> None:
        self.paused = False
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._keys: dict[str, float] = {}

    def apply(self, fields: Mapping[str, str], at_ms: float) -> str:
        """Apply one control entry; returns its action (``abort``, ``pause``, ``resume``) or raises ValueError."""
        action = fields.get("action", "")
        if action == "pause":
            self.paused = True
        elif action == "resume":
            self.paused = False
        elif action == "abort":
            if fields.get("event_id"):
                self._ids[fields["event_id"]] = None
                while len(self._ids) > MAX_REMEMBERED:
                    self._ids.popitem(last=False)
            elif fields.get("key"):
                self._keys[fields["key"]] = max(self._keys.get(fields["key"], 0.0), at_ms)
            else:
                raise ValueError("abort needs event_id or key")
        else:
            raise ValueError(f"unknown control action {action!r}")
        return action

    def is_aborted(self, event: Event) -> bool:
        if event.id in self._ids:
            return True
        cutoff = self._keys.get(event.key) if event.key else None
        return cutoff is not None and event.created_ms <= cutoff


class Supersession:
    """Latest-wins by key: remembers the newest event seen per key (by creation time, then log position)."""

    def __init__(self) -> None:
        self._latest: OrderedDict[str, tuple[float, tuple[int, int]]] = OrderedDict()

    @staticmethod
    def _rank(event: Event) -> tuple[float, tuple[int, int]]:
        return event.created_ms, id_rank(event.entry_id)

    def observe(self, event: Event) -> None:
        if not event.key:
            return
        rank = self._rank(event)
        if event.key not in self._latest or self._latest[event.key] < rank:
            self._latest[event.key] = rank
            self._latest.move_to_end(event.key)
            while len(self._latest) > MAX_REMEMBERED:
                self._latest.popitem(last=False)

    def is_superseded(self, event: Event) -> bool:
        latest = self._latest.get(event.key) if event.key else None
        return latest is not None and latest > self._rank(event)


class FanOut:
    """Concurrent inferences per key and per tenant (None: unlimited)."""

    def __init__(self, per_key: int | None, per_tenant: int | None) -> None:
        self.per_key = per_key
        self.per_tenant = per_tenant
        self.keys: Counter[str] = Counter()
        self.tenants: Counter[str] = Counter()

    def can_start(self, event: Event) -> bool:
        if self.per_key is not None and event.key and self.keys[event.key] >= self.per_key:
            return False
        return self.per_tenant is None or self.tenants[event.tenant] < self.per_tenant

    def start(self, event: Event) -> None:
        if event.key:
            self.keys[event.key] += 1
        self.tenants[event.tenant] += 1

    def finish(self, event: Event) -> None:
        if event.key:
            self.keys[event.key] -= 1
            if self.keys[event.key] <= 0:
                del self.keys[event.key]
        self.tenants[event.tenant] -= 1
        if self.tenants[event.tenant] <= 0:
            del self.tenants[event.tenant]


Hook = Callable[[Event, float], bool]


def load_hook(target: str) -> Hook:
    module, _, attr = target.partition(":")
    fn = getattr(importlib.import_module(module), attr)
    if not callable(fn):
        raise TypeError(f"{target} is not callable")
    return fn  # type: ignore[no-any-return]


class Valuable:
    """The "is this event still valuable?" predicate built from ``lifecycle.valuable``."""

    def __init__(self, spec: ValuableSpec | None) -> None:
        self.spec = spec
        self.hook: Hook | None = load_hook(spec.hook) if spec is not None and spec.hook else None

    def __call__(self, event: Event, now_ms: float) -> bool:
        spec = self.spec
        if spec is None:
            return True
        if spec.max_age_ms is not None and event.age_ms(now_ms) > spec.max_age_ms:
            return False
        fields = event.fields()
        if not all(matches(c, fields) for c in spec.when):
            return False
        return self.hook is None or bool(self.hook(event, now_ms))
