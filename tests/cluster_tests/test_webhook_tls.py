"""The webhook's in-cluster TLS: a certificate kept in a Secret, reused, renewed when due,
and a configuration the apiserver accepts with a Service client config."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from cryptography import x509

from hack.localcluster.controlplane import LocalCluster
from restream_operator import webhook
from restream_operator.certs import issue_serving_cert
from restream_operator.kube import Kube, load_config

pytestmark = pytest.mark.cluster

SERVICE = "restream-operator-webhook"


@pytest.fixture
def kube(cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch) -> Kube:
    monkeypatch.setenv("KUBECONFIG", str(cluster.kubeconfig))
    return Kube(load_config())


def test_generated_certificate_is_stored_and_reused_across_restarts(
    kube: Kube, namespace: str
) -> None:
    first = webhook.cluster_plan(kube, namespace, SERVICE, None)
    again = webhook.cluster_plan(kube, namespace, SERVICE, None)  # as after a restart
    assert again.cert == first.cert
    secret = kube.get("Secret", namespace, f"{SERVICE}-tls")
    assert secret is not None
    assert secret["type"] == "kubernetes.io/tls"
    assert base64.b64decode(secret["data"]["ca.crt"]) == first.cert.ca
    assert first.cert.covers([f"{SERVICE}.{namespace}.svc", f"{SERVICE}.{namespace}"])
    assert first.client_config == {
        "service": {"namespace": namespace, "name": SERVICE, "port": 443}
    }


def test_a_certificate_for_other_names_is_replaced(kube: Kube, namespace: str) -> None:
    wrong = issue_serving_cert(["somewhere.else.svc"])
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": f"{SERVICE}-tls", "namespace": namespace},
            "type": "kubernetes.io/tls",
            "data": {
                "ca.crt": base64.b64encode(wrong.ca).decode(),
                "tls.crt": base64.b64encode(wrong.cert).decode(),
                "tls.key": base64.b64encode(wrong.key).decode(),
            },
        }
    )
    plan = webhook.cluster_plan(kube, namespace, SERVICE, None)
    assert plan.cert != wrong
    assert plan.cert.covers([f"{SERVICE}.{namespace}.svc"])


def test_cert_manager_certificate_from_a_mounted_directory(
    kube: Kube, namespace: str, tmp_path: Path
) -> None:
    mounted = issue_serving_cert([f"{SERVICE}.{namespace}.svc"])
    mounted.write(tmp_path)
    plan = webhook.cluster_plan(kube, namespace, SERVICE, tmp_path)
    assert plan.cert == mounted
    assert kube.get("Secret", namespace, f"{SERVICE}-tls") is None  # nothing generated


def test_apiserver_accepts_the_service_configuration(
    cluster: LocalCluster, kube: Kube, namespace: str
) -> None:
    plan = webhook.cluster_plan(kube, namespace, SERVICE, None)
    obj = webhook.webhook_configuration(plan.client_config, plan.cert.ca)
    obj["metadata"]["name"] = f"tls-test-{namespace}"
    # Match nothing real, so that no other test's LiveStream is sent here.
    obj["webhooks"][0]["rules"][0]["apiGroups"] = ["nothing.restream.dev"]
    try:
        kube.apply(obj)
        out = cluster.kubectl(
            "get", "validatingwebhookconfiguration", f"tls-test-{namespace}", "-o", "json"
        )
        hook = json.loads(out.stdout)["webhooks"][0]
        assert hook["clientConfig"]["service"] == {
            "namespace": namespace,
            "name": SERVICE,
            "port": 443,
            "path": "/validate",
        }
        assert hook["failurePolicy"] == "Fail"
        assert hook["timeoutSeconds"] == 5
        ca = x509.load_pem_x509_certificate(base64.b64decode(hook["clientConfig"]["caBundle"]))
        assert ca.subject.rfc4514_string().endswith("-ca")
    finally:
        cluster.kubectl(
            "delete",
            "validatingwebhookconfiguration",
            f"tls-test-{namespace}",
            "--ignore-not-found",
        )
