"""The east-west policy: which identity may call which model, route or tool. Default deny.

A rule names identities (exact strings or shell-style patterns such as ``spiffe://prod/ns/rag/*``) and what they
may reach, by kind: ``models``, ``routes`` (gateway paths such as ``/v1/retrieve``) and ``tools``. Anything no rule
grants is denied; there are no deny rules to order, so the policy reads the same however rules are listed.
The same rules are exported as CiliumNetworkPolicy (``cilium.py``), so the intent is also enforced at L3/L4.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

KINDS = ("models", "routes", "tools")


@dataclass(frozen=True, slots=True)
class PolicyRule:
    """Grants the identities matching ``identities`` access to the named models, routes and tools."""

    name: str
    identities: tuple[str, ...]
    models: tuple[str, ...] = ()
    routes: tuple[str, ...] = ()
    tools: tuple[str, ...] = ()
    # Kubernetes labels of the caller's pods, used only by the Cilium export.
    selector: Mapping[str, str] = field(default_factory=dict)

    def grants(self, kind: str) -> tuple[str, ...]:
        if kind not in KINDS:
            raise ValueError(f"unknown policy kind {kind!r}; expected one of {', '.join(KINDS)}")
        value: tuple[str, ...] = getattr(self, kind)
        return value


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    rule: str | None
    reason: str


class EastWestPolicy:
    """Evaluates requests against the rules; pure and cheap enough for every request."""

    def __init__(self, rules: Iterable[PolicyRule]) -> None:
        self.rules = tuple(rules)

    def decide(self, identity: str, kind: str, name: str) -> Decision:
        for rule in self.rules:
            if not any(fnmatchcase(identity, pattern) for pattern in rule.identities):
                continue
            if any(fnmatchcase(name, pattern) for pattern in rule.grants(kind)):
                return Decision(True, rule.name, f"granted by rule {rule.name}")
        return Decision(False, None, f"no rule lets {identity} call {kind[:-1]} {name} (default deny)")

    def allows(self, identity: str, kind: str, name: str) -> bool:
        return self.decide(identity, kind, name).allowed

    @classmethod
    def from_mapping(cls, raw: Iterable[Mapping[str, Any]]) -> EastWestPolicy:
        """Build from config-shaped data: ``[{name, identities, models, routes, tools, selector}]``."""
        rules = []
        for index, item in enumerate(raw):
            unknown = set(item) - {"name", "identities", *KINDS, "selector"}
            if unknown:
                raise ValueError(f"rules[{index}]: unknown keys {sorted(unknown)}")
            identities = item.get("identities")
            if not identities or not all(isinstance(i, str) for i in identities):
                raise ValueError(f"rules[{index}].identities: a non-empty list of strings is required")
            grants = {}
            for kind in KINDS:
                values = item.get(kind, [])
                if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                    raise ValueError(f"rules[{index}].{kind}: a list of strings is required")
                grants[kind] = tuple(values)
            selector = item.get("selector", {})
            if not isinstance(selector, Mapping):
                raise ValueError(f"rules[{index}].selector: a mapping of labels is required")
            rules.append(
                PolicyRule(
                    name=str(item.get("name", f"rule-{index}")),
                    identities=tuple(identities),
                    selector={str(k): str(v) for k, v in selector.items()},
                    **grants,
                )
            )
        return cls(rules)
