"""Default-deny east-west policy decisions and their Cilium rendering."""

from __future__ import annotations

import pytest
import yaml

from tokenyard.security.cilium import dump_manifests, glob_to_regex, render_policies
from tokenyard.security.eastwest import EastWestPolicy

RULES = [
    {"name": "rag", "identities": ["spiffe://prod/ns/rag/*"], "models": ["chat", "embed-*"],
     "routes": ["/v1/retrieve"], "tools": [], "selector": {"app": "rag-worker"}},
    {"name": "agent", "identities": ["spiffe://prod/ns/agent/sa/planner"], "models": ["chat"],
     "tools": ["search", "calc"], "selector": {"app": "planner"}},
    {"name": "batch-job", "identities": ["batch@jobs"], "models": ["chat-small"]},
]


@pytest.mark.parametrize(
    ("identity", "kind", "name", "allowed"),
    [
        ("spiffe://prod/ns/rag/sa/worker", "models", "chat", True),
        ("spiffe://prod/ns/rag/sa/worker", "models", "embed-small", True),
        ("spiffe://prod/ns/rag/sa/worker", "models", "chat-large", False),
        ("spiffe://prod/ns/rag/sa/worker", "routes", "/v1/retrieve", True),
        ("spiffe://prod/ns/rag/sa/worker", "tools", "search", False),
        ("spiffe://prod/ns/agent/sa/planner", "tools", "search", True),
        ("spiffe://prod/ns/agent/sa/planner", "tools", "shell", False),
        ("spiffe://prod/ns/agent/sa/other", "tools", "search", False),
        ("batch@jobs", "models", "chat-small", True),
        ("nobody", "models", "chat", False),
    ],
)
def test_decisions(identity: str, kind: str, name: str, allowed: bool) -> None:
    decision = EastWestPolicy.from_mapping(RULES).decide(identity, kind, name)
    assert decision.allowed is allowed
    if not allowed:
        assert "default deny" in decision.reason


def test_rejects_malformed_rules() -> None:
    with pytest.raises(ValueError, match="identities"):
        EastWestPolicy.from_mapping([{"name": "x", "models": ["a"]}])
    with pytest.raises(ValueError, match="unknown keys"):
        EastWestPolicy.from_mapping([{"identities": ["a"], "modles": ["a"]}])
    with pytest.raises(ValueError, match="tools"):
        EastWestPolicy.from_mapping([{"identities": ["a"], "tools": "search"}])


def test_cilium_manifests() -> None:
    policy = EastWestPolicy.from_mapping(RULES)
    manifests, warnings = render_policies(policy, {"app": "tokenyard"}, 8080, namespace="ai")
    assert [m["metadata"]["name"] for m in manifests] == ["tokenyard-rag", "tokenyard-agent"]
    assert warnings == ["rule batch-job: no selector labels, so it is enforced by the gateway only"]
    agent = manifests[1]
    assert agent["apiVersion"] == "cilium.io/v2" and agent["kind"] == "CiliumNetworkPolicy"
    assert agent["metadata"]["namespace"] == "ai"
    assert agent["spec"]["endpointSelector"] == {"matchLabels": {"app": "tokenyard"}}
    ingress = agent["spec"]["ingress"][0]
    assert ingress["fromEndpoints"] == [{"matchLabels": {"app": "planner"}}]
    assert ingress["toPorts"][0]["ports"] == [{"port": "8080", "protocol": "TCP"}]
    paths = [r["path"] for r in ingress["toPorts"][0]["rules"]["http"]]
    assert "^/v1/tools/search$" in paths and "^/v1/tools/calc$" in paths
    assert "^/v1/chat/completions$" in paths
    assert list(yaml.safe_load_all(dump_manifests(manifests))) == manifests


def test_glob_to_regex_escapes() -> None:
    assert glob_to_regex("/v1/tools/a.b*") == r"^/v1/tools/a\.b.*$"


def test_cilium_manifest_names_stay_distinct_when_rule_names_slug_alike() -> None:
    long = "a-very-long-rule-name-for-the-team-that-owns-retrieval-"
    rules = [{"name": name, "identities": [f"id-{i}"], "tools": ["search"], "selector": {"app": f"a{i}"}}
             for i, name in enumerate(["RAG service", "rag_service", long + "one", long + "two", "agent"])]
    manifests, _ = render_policies(EastWestPolicy.from_mapping(rules), {"app": "tokenyard"}, 8080)
    names = [m["metadata"]["name"] for m in manifests]
    # kubectl apply keeps one object per name: a repeated name would drop a rule's grant.
    assert len(set(names)) == len(names) == 5, names
    assert names[4] == "tokenyard-agent" and all(len(n) <= 63 for n in names)
    again, _ = render_policies(EastWestPolicy.from_mapping(rules), {"app": "tokenyard"}, 8080)
    assert [m["metadata"]["name"] for m in again] == names


@pytest.mark.parametrize("glob", ["/v1/tools/a[bc]", "/v1/tools/[!x]*", "/v1/tools/[]]x", "/v1/tools/[a-c]?",
                                  "/v1/tools/[^a]", "/v1/tools/a[", "/v1/tools/a.b*", "/v1/tools/[\\]"])
def test_glob_to_regex_matches_what_the_gateway_matches(glob: str) -> None:
    import re
    from fnmatch import fnmatchcase

    regex = re.compile(glob_to_regex(glob))
    for tail in ["ab", "ac", "ad", "a", "x", "y1", "]x", "b2", "^", "a", "a[", "a.bc", "axbc", "\\", "ab/c"]:
        path = "/v1/tools/" + tail
        assert bool(regex.match(path)) == fnmatchcase(path, glob), (glob, path, regex.pattern)
