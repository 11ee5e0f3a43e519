"""deploy/: Kubernetes manifests against the Kubernetes schemas, cross-references, and the Grafana dashboard."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"
K8S_VERSION = "1.37.0"
CRD_KINDS = {"ServiceMonitor"}  # CRDs: not in the bundled schemas; checked by cross-reference below


def documents() -> list[tuple[str, dict[str, Any]]]:
    docs = []
    for path in sorted((DEPLOY / "kubernetes").glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        docs.extend((path.name, doc) for doc in yaml.safe_load_all(path.read_text()) if doc)
    return docs


def by_kind(kind: str) -> list[dict[str, Any]]:
    return [doc for _, doc in documents() if doc["kind"] == kind]


@pytest.mark.parametrize(("name", "doc"), [d for d in documents() if d[1]["kind"] not in CRD_KINDS],
                         ids=lambda v: v if isinstance(v, str) else v["kind"])
def test_builtin_kinds_validate_strictly(name: str, doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_strict_validation_catches_a_typo() -> None:
    broken = copy.deepcopy(by_kind("Deployment")[0])
    broken["spec"]["replicaz"] = 3
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


def test_kustomization_lists_every_manifest() -> None:
    listed = set(yaml.safe_load((DEPLOY / "kubernetes" / "kustomization.yaml").read_text())["resources"])
    present = {p.name for p in (DEPLOY / "kubernetes").glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == present


def test_required_objects_exist_and_reference_each_other() -> None:
    kinds = {doc["kind"] for _, doc in documents()}
    assert {"Deployment", "Service", "HorizontalPodAutoscaler", "ServiceMonitor", "ConfigMap"} <= kinds
    gateway = next(d for d in by_kind("Deployment") if d["metadata"]["name"] == "tokenyard")
    service = next(s for s in by_kind("Service") if s["metadata"]["name"] == "tokenyard")
    pod_labels = gateway["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    monitor = by_kind("ServiceMonitor")[0]
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    port_names = {p["name"] for p in service["spec"]["ports"]}
    assert all(e["port"] in port_names and e["path"] == "/metrics" for e in monitor["spec"]["endpoints"])
    hpa = by_kind("HorizontalPodAutoscaler")[0]
    assert hpa["spec"]["scaleTargetRef"]["name"] == "tokenyard"
    container = gateway["spec"]["template"]["spec"]["containers"][0]
    probes = {container["readinessProbe"]["httpGet"]["path"], container["livenessProbe"]["httpGet"]["path"]}
    assert probes == {"/readyz", "/healthz"}
    config_map = by_kind("ConfigMap")[0]
    assert config_map["metadata"]["name"] == gateway["spec"]["template"]["spec"]["volumes"][0]["configMap"]["name"]
    config = yaml.safe_load(config_map["data"]["config.yaml"])
    redis_service = next(s for s in by_kind("Service") if s["metadata"]["name"] == "tokenyard-redis")
    assert config["state"].startswith(f"redis://{redis_service['metadata']['name']}:")


def exported_metric_names() -> set[str]:
    """What the gateway really exports: every family on its registry, counters with their ``_total``."""
    from tokenyard.telemetry.metrics import GatewayMetrics

    names = set()
    for family in GatewayMetrics().registry.collect():
        names.add(family.name + "_total" if family.type == "counter" else family.name)
    return names


def test_grafana_dashboard_queries_only_exported_metrics() -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "tokenyard.json").read_text())
    names = set()
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            names.update(re.findall(r"tokenyard_[a-z_]+", target["expr"]))
    queried = {re.sub(r"_(bucket|count|sum)$", "", n) for n in names}
    exported = exported_metric_names()
    assert queried <= exported, queried - exported
    # The dashboard covers the AI-aware SLOs the issue names, not just any metrics.
    assert {"tokenyard_time_to_first_token_seconds", "tokenyard_queue_depth", "tokenyard_upstream_aborts_total",
            "tokenyard_degradation_level", "tokenyard_backend_up", "tokenyard_cache_requests_total"} <= queried
    assert len(dashboard["panels"]) >= 12
