"""The chart's metrics: the operator's endpoint and Service, the ServiceMonitor and
PodMonitor (checked against what they must select, and accepted by the API server with
prometheus-operator's own CRDs installed), the scrape annotations, the scraper's
NetworkPolicy peer and the Grafana dashboard ConfigMap (helm template with the pinned
helm)."""

from __future__ import annotations

import json
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from hack.localcluster import monitoring_crds
from hack.localcluster.controlplane import LocalCluster, build_binaries
from restream_operator import naming
from restream_operator.agent import contract
from restream_operator.render import owner_from_object, render_children
from restream_operator.settings import Settings

pytestmark = pytest.mark.cluster

CHECKOUT = Path(__file__).resolve().parents[2]
CHART = CHECKOUT / "charts" / "restream-operator"
RELEASE = "restream-operator"
NAMESPACE = "restream-system"
MONITORING = "monitoring.coreos.com/v1"
ALL_ON = (
    "metrics.serviceMonitor.enabled=true",
    "metrics.podMonitor.enabled=true",
    "metrics.dashboard.enabled=true",
)


@cache
def _helm() -> str:
    return str(build_binaries() / "helm")


def helm_template(
    *sets: str, check: bool = True, namespace: str = NAMESPACE
) -> subprocess.CompletedProcess[str]:
    args = [_helm(), "template", RELEASE, str(CHART), "--namespace", namespace]
    for s in sets:
        args += ["--set", s]
    run = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
    if check:
        assert run.returncode == 0, run.stderr
    return run


def template(*sets: str, namespace: str = NAMESPACE) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(helm_template(*sets, namespace=namespace).stdout) if d]


def one(docs: list[dict[str, Any]], kind: str, api_version: str | None = None) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and api_version in (None, d["apiVersion"])]
    assert len(found) == 1, [d["metadata"]["name"] for d in found]
    return found[0]


def operator_container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    container: dict[str, Any] = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    return container


def settings_of(docs: list[dict[str, Any]]) -> Settings:
    env = operator_container(docs)["env"]
    return Settings.from_env({e["name"]: e["value"] for e in env if "value" in e})


SHOW = {
    "apiVersion": "restream.dev/v1alpha1",
    "kind": "LiveStream",
    "metadata": {"name": "show", "namespace": "studio"},
    "spec": {"restreams": [{"name": "YouTube", "serverUrl": "rtmp://a.example/live"}]},
}


def children(settings: Settings, kind: str) -> list[dict[str, Any]]:
    """What the operator renders of ``kind`` for a LiveStream with one restream."""
    rendered = render_children(owner_from_object(SHOW), settings).applied
    return [d for d in rendered if d["kind"] == kind]


def media_pods(settings: Settings) -> list[dict[str, Any]]:
    return [d["spec"]["template"] for d in children(settings, "Deployment")]


def policies(settings: Settings) -> list[dict[str, Any]]:
    return children(settings, "NetworkPolicy")


def test_by_default_the_operator_serves_metrics_and_nothing_else_is_rendered() -> None:
    docs = template()
    assert not [d for d in docs if d["apiVersion"] == MONITORING]
    assert not [
        d for d in docs if d["kind"] == "ConfigMap" and "dashboard" in d["metadata"]["name"]
    ]
    container = operator_container(docs)
    assert "--metrics=0.0.0.0:8080" in container["args"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["metrics"] == 8080 and len(set(ports.values())) == len(ports)
    service = next(d for d in docs if d["metadata"]["name"] == f"{RELEASE}-metrics")
    assert service["spec"]["ports"] == [
        {"name": "metrics", "port": 8080, "targetPort": "metrics", "protocol": "TCP"}
    ]
    pod = one(docs, "Deployment")["spec"]["template"]
    assert not any(k.startswith("prometheus.io/") for k in pod["metadata"].get("annotations", {}))
    settings = settings_of(docs)
    assert settings.metrics_scraper_namespace == "" and not settings.pod_scrape_annotations
    for template_ in media_pods(settings):
        assert not any(k.startswith("prometheus.io/") for k in template_["metadata"]["annotations"])


def test_the_service_monitor_selects_the_operators_metrics_service() -> None:
    docs = template(*ALL_ON, "metrics.serviceMonitor.labels.release=kube-prometheus-stack")
    monitor = one(docs, "ServiceMonitor", MONITORING)
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    service = next(d for d in docs if d["metadata"]["name"] == f"{RELEASE}-metrics")
    wanted = monitor["spec"]["selector"]["matchLabels"]
    assert wanted.items() <= service["metadata"]["labels"].items()
    # ...and only it: the webhook's Service is not scraped.
    others = [
        d
        for d in docs
        if d["kind"] == "Service" and d["metadata"]["name"] != service["metadata"]["name"]
    ]
    assert all(not wanted.items() <= d["metadata"]["labels"].items() for d in others)
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == service["spec"]["ports"][0]["name"]
    assert endpoint["path"] == "/metrics" and endpoint["honorLabels"] is True
    # The Service reaches the operator's pod on the port it serves /metrics on.
    pod = one(docs, "Deployment")["spec"]["template"]
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()


def test_the_pod_monitor_selects_every_ingest_and_relay_pod_on_its_agent_port() -> None:
    docs = template(*ALL_ON)
    monitor = one(docs, "PodMonitor", MONITORING)
    selector = monitor["spec"]["selector"]
    pods = media_pods(settings_of(docs))
    assert {p["metadata"]["labels"][naming.LABEL_COMPONENT] for p in pods} == {"ingest", "relay"}
    for pod in pods:
        labels = pod["metadata"]["labels"]
        assert selector["matchLabels"].items() <= labels.items()
        for expr in selector["matchExpressions"]:
            assert expr["operator"] == "In" and labels[expr["key"]] in expr["values"]
        (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
        ports = {p["name"]: p["containerPort"] for p in pod["spec"]["containers"][0]["ports"]}
        assert ports[endpoint["port"]] == contract.AGENT_PORT
        assert endpoint["path"] == contract.PATH_METRICS
        # The LiveStream's label, as Prometheus' pod discovery names it.
        source = "__meta_kubernetes_pod_label_" + "".join(
            c if c.isalnum() else "_" for c in naming.LABEL_LIVESTREAM
        )
        (relabel,) = [r for r in endpoint["relabelings"] if r["targetLabel"] == "livestream"]
        assert relabel["sourceLabels"] == [source]
        assert naming.LABEL_LIVESTREAM in labels
    assert monitor["spec"]["namespaceSelector"] == {"any": True}
    # With watchNamespaces, those.
    docs = template(*ALL_ON, "watchNamespaces={studio,news}")
    monitor = one(docs, "PodMonitor", MONITORING)
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["studio", "news"]}


def test_scrape_annotations_and_the_scraper_network_policy_peer() -> None:
    docs = template(
        "metrics.scrapeAnnotations=true",
        "metrics.scraper.namespace=monitoring",
        "metrics.scraper.podLabels.app\\.kubernetes\\.io/name=prometheus",
    )
    annotations = one(docs, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert annotations == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": "8080",
        "prometheus.io/path": "/metrics",
    }
    settings = settings_of(docs)
    for pod in media_pods(settings):
        meta = pod["metadata"]["annotations"]
        assert meta["prometheus.io/scrape"] == "true"
        assert meta["prometheus.io/port"] == str(contract.AGENT_PORT)
        assert meta["prometheus.io/path"] == contract.PATH_METRICS
    prometheus_pods = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
    }
    agent_port = [{"protocol": "TCP", "port": contract.AGENT_PORT}]
    for policy in policies(settings):
        rules = [r for r in policy["spec"]["ingress"] if r["ports"] == agent_port]
        assert len(rules) == 1 and prometheus_pods in rules[0]["from"]
    # Without a scraper, nobody but the operator (and an ingest's own relays) is added.
    for policy in policies(settings_of(template())):
        for rule in policy["spec"]["ingress"]:
            assert prometheus_pods not in rule.get("from", [])


def test_the_dashboard_config_map_carries_the_charts_dashboard() -> None:
    docs = template(*ALL_ON, "metrics.dashboard.annotations.grafana_folder=Video")
    cm = next(d for d in docs if d["kind"] == "ConfigMap" and "dashboard" in d["metadata"]["name"])
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["namespace"] == NAMESPACE
    assert cm["metadata"]["annotations"] == {"grafana_folder": "Video"}
    (text,) = cm["data"].values()
    dashboard = json.loads(text)
    assert dashboard == json.loads((CHART / "files" / "dashboard.json").read_text())
    titles = {p["title"] for p in dashboard["panels"]}
    for wanted in (
        "Live streams",
        "Destination state",
        "Bitrate per destination",
        "Relay restarts",
        "Operator errors",
        "Ingest bitrate",
        "Keyframe interval",
        "Reconcile latency",
        "Webhook latency",
    ):
        assert wanted in titles
    docs = template("metrics.dashboard.enabled=true", "metrics.dashboard.namespace=grafana")
    cm = next(d for d in docs if d["kind"] == "ConfigMap" and "dashboard" in d["metadata"]["name"])
    assert cm["metadata"]["namespace"] == "grafana"


def test_the_schema_refuses_a_metrics_port_the_operator_already_uses() -> None:
    for port in (8081, 9443):
        run = helm_template(f"metrics.port={port}", check=False)
        assert run.returncode != 0 and "/metrics/port" in run.stderr
    assert helm_template("metrics.serviceMonitor.interval=often", check=False).returncode != 0


def test_the_api_server_takes_the_monitors_with_prometheus_operators_crds(
    cluster: LocalCluster, namespace: str
) -> None:
    """Their schema is prometheus-operator's (strict: no field it does not know)."""
    files = monitoring_crds.crd_files()
    for path in files:
        cluster.kubectl("apply", "--server-side", "-f", str(path))
    try:
        cluster.wait_established(*(f"{k}.monitoring.coreos.com" for k in monitoring_crds.KINDS))
        docs = template(*ALL_ON, "watchNamespaces={studio}", namespace=namespace)
        monitors = [d for d in docs if d["apiVersion"] == MONITORING]
        assert {d["kind"] for d in monitors} == {"ServiceMonitor", "PodMonitor"}
        out = cluster.kubectl(
            "apply", "--dry-run=server", "--validate=strict", "-f", "-",
            input="\n---\n".join(yaml.safe_dump(d) for d in monitors),
        )  # fmt: skip
        assert "servicemonitor.monitoring.coreos.com" in out.stdout
        assert "podmonitor.monitoring.coreos.com" in out.stdout
        # The schema is there to say no: a misspelt field is refused.
        pod_monitor = next(d for d in monitors if d["kind"] == "PodMonitor")
        endpoint = pod_monitor["spec"]["podMetricsEndpoints"][0]
        endpoint["paht"] = endpoint.pop("path")
        refused = cluster.kubectl(
            "apply", "--dry-run=server", "--validate=strict", "-f", "-",
            input=yaml.safe_dump(pod_monitor), check=False,
        )  # fmt: skip
        assert refused.returncode != 0 and "paht" in refused.stderr
    finally:
        for path in files:
            cluster.kubectl("delete", "-f", str(path), "--wait=false", check=False)
