"""Render the east-west allow-list as CiliumNetworkPolicy manifests.

The gateway enforces the policy at L7 with identities (JWT, mTLS). Where Cilium runs, the same intent can also be
enforced in the kernel: each rule becomes one ``cilium.io/v2`` CiliumNetworkPolicy that lets the pods matching the
rule's ``selector`` reach the gateway's pods on its port, limited by Cilium's HTTP rules to the paths the rule
grants. Because a policy that selects an endpoint puts it in default-deny for that direction, callers that no rule
names are dropped. Models are chosen in the request body, which Cilium's HTTP rules cannot see, so a model grant
becomes the OpenAI inference paths; the gateway still checks the model name itself.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Mapping
from typing import Any

import yaml

from tokenyard.security.eastwest import EastWestPolicy, PolicyRule

INFERENCE_PATHS = (
    ("POST", "/v1/chat/completions"),
    ("POST", "/v1/completions"),
    ("POST", "/v1/embeddings"),
    ("GET", "/v1/models"),
    ("GET", "/v1/streams/[^/]+"),
)


def glob_to_regex(pattern: str) -> str:
    """A shell-style glob as the anchored extended regular expression Cilium's HTTP rules expect.

    The same glob language the gateway matches with ``fnmatchcase`` (``*``, ``?``, ``[seq]``, ``[!seq]``), so
    Cilium lets through exactly the paths the gateway's policy grants.
    """
    out = []
    i, n = 0, len(pattern)
    while i < n:
        char = pattern[i]
        i += 1
        if char == "*":
            out.append(".*")
        elif char == "?":
            out.append(".")
        elif char == "[" and (end := _class_end(pattern, i)) is not None:
            body = pattern[i:end]
            negate = body.startswith("!")
            members = body[1:] if negate else body
            escaped = "".join("\\" + c if c in "\\^[]" else c for c in members)
            out.append("[" + ("^" if negate else "") + escaped + "]")
            i = end + 1
        else:
            out.append(re.escape(char))
    return "^" + "".join(out) + "$"


def _class_end(pattern: str, start: int) -> int | None:
    """Index of the ``]`` closing a class opened just before ``start`` (fnmatch's rules), None if unclosed."""
    j = start
    if j < len(pattern) and pattern[j] == "!":
        j += 1
    if j < len(pattern) and pattern[j] == "]":
        j += 1  # a leading ] is a member
    end = pattern.find("]", j)
    return None if end < 0 else end


def _http_rules(rule: PolicyRule) -> list[dict[str, str]]:
    rules: list[dict[str, str]] = []
    if rule.models:
        rules.extend({"method": method, "path": "^" + path + "$"} for method, path in INFERENCE_PATHS)
    rules.extend({"method": "POST", "path": glob_to_regex("/v1/tools/" + tool)} for tool in rule.tools)
    rules.extend({"path": glob_to_regex(route)} for route in rule.routes)
    return rules


def _slug(name: str) -> str:
    slug = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")
    return slug[:50] or "rule"


def _manifest_names(rules: tuple[PolicyRule, ...]) -> dict[str, str]:
    """A distinct ``metadata.name`` per rule name. Rule names are unique but their slugs need not be ("RAG
    service" and "rag_service", long names sharing 50 characters): two manifests with one name would make
    ``kubectl apply`` keep only the last, silently dropping the other rule's grant. A slug shared by several
    rules gets a digest of the rule's own name, so it stays the same from one export to the next."""
    slugs = {rule.name: _slug(rule.name) for rule in rules}
    counts = Counter(slugs.values())
    return {name: f"tokenyard-{slug}" if counts[slug] == 1
            else f"tokenyard-{slug[:41]}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"
            for name, slug in slugs.items()}


def render_policies(
    policy: EastWestPolicy,
    gateway_labels: Mapping[str, str],
    port: int,
    namespace: str = "default",
) -> tuple[list[dict[str, Any]], list[str]]:
    """One manifest per exportable rule, and a warning for each rule that cannot be exported."""
    manifests: list[dict[str, Any]] = []
    warnings: list[str] = []
    names = _manifest_names(policy.rules)
    for rule in policy.rules:
        if not rule.selector:
            warnings.append(f"rule {rule.name}: no selector labels, so it is enforced by the gateway only")
            continue
        http = _http_rules(rule)
        if not http:
            warnings.append(f"rule {rule.name}: grants nothing, so nothing is exported")
            continue
        manifests.append({
            "apiVersion": "cilium.io/v2",
            "kind": "CiliumNetworkPolicy",
            "metadata": {
                "name": names[rule.name],
                "namespace": namespace,
                "labels": {"app.kubernetes.io/managed-by": "tokenyard"},
            },
            "spec": {
                "description": f"tokenyard east-west rule {rule.name}",
                "endpointSelector": {"matchLabels": dict(gateway_labels)},
                "ingress": [{
                    "fromEndpoints": [{"matchLabels": dict(rule.selector)}],
                    "toPorts": [{
                        "ports": [{"port": str(port), "protocol": "TCP"}],
                        "rules": {"http": http},
                    }],
                }],
            },
        })
    return manifests, warnings


def dump_manifests(manifests: list[dict[str, Any]]) -> str:
    """Multi-document YAML, ready for ``kubectl apply -f -``."""
    return yaml.safe_dump_all(manifests, sort_keys=False, default_flow_style=False)
