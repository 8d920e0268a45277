"""Proof that the local control plane is a real Kubernetes: scheduling, CRDs, GC, namespaces."""

from __future__ import annotations

import json

import pytest

from hack.localcluster.controlplane import KWOK_NODE_NAME, LocalCluster
from hack.localcluster.versions import CHOICE_VARIABLE, chosen_kubernetes_version
from hack.waiting import wait_for

pytestmark = pytest.mark.cluster


def get_json(cluster: LocalCluster, *args: str) -> dict[str, object]:
    return dict(json.loads(cluster.kubectl("get", *args, "-o", "json").stdout))


def test_the_api_server_and_kubectl_are_the_kubernetes_version_chosen(
    cluster: LocalCluster,
) -> None:
    """RESTREAM_KUBERNETES=oldest (`make test-cluster-oldest`) must run the oldest
    version the README claims, and the default the pinned one: were the bin dir chosen
    wrongly, the tier's second run would test the pinned version twice and prove nothing."""
    want = chosen_kubernetes_version()
    served = json.loads(cluster.kubectl("get", "--raw", "/version").stdout)
    assert served["gitVersion"] == want, f"{CHOICE_VARIABLE} chose {want}"
    client = json.loads(cluster.kubectl("version", "--client", "-o", "json").stdout)
    assert client["clientVersion"]["gitVersion"] == want


DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: web
          image: registry.invalid/web:1
          readinessProbe: {tcpSocket: {port: 80}}
"""


def test_deployment_gets_a_replicaset_and_a_ready_pod_on_a_kwok_node(
    cluster: LocalCluster, namespace: str
) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=DEPLOYMENT)

    def pod_ready() -> bool:
        pods = get_json(cluster, "pods", "-n", namespace, "-l", "app=web")["items"]
        assert isinstance(pods, list)
        if len(pods) != 1:
            return False
        status = pods[0]["status"]
        ready = [c for c in status.get("conditions", []) if c["type"] == "Ready"]
        return status.get("phase") == "Running" and bool(ready) and ready[0]["status"] == "True"

    wait_for(pod_ready, "the Deployment's pod to be Running and Ready")
    rs = get_json(cluster, "replicasets", "-n", namespace, "-l", "app=web")["items"]
    assert isinstance(rs, list) and len(rs) == 1
    assert rs[0]["metadata"]["ownerReferences"][0]["name"] == "web"
    pod = get_json(cluster, "pods", "-n", namespace, "-l", "app=web")["items"][0]  # type: ignore[index]
    assert pod["spec"]["nodeName"] == KWOK_NODE_NAME
    assert pod["metadata"]["ownerReferences"][0]["name"] == rs[0]["metadata"]["name"]
    wait_for(
        lambda: (
            get_json(cluster, "deployment", "web", "-n", namespace)["status"].get(  # type: ignore[attr-defined]
                "readyReplicas"
            )
            == 1
        ),
        "the Deployment to count its ready replica",
    )


CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: gadgets.smoke.restream.dev}
spec:
  group: smoke.restream.dev
  scope: Namespaced
  names: {plural: gadgets, singular: gadget, kind: Gadget}
  versions:
    - name: v1
      served: true
      storage: true
      subresources: {status: {}}
      schema:
        openAPIV3Schema:
          type: object
          description: A gadget exists only to prove that CRDs work here.
          properties:
            spec:
              type: object
              description: What the gadget should be.
              required: [size]
              properties:
                size:
                  type: integer
                  minimum: 1
                  description: How many sprockets the gadget has, at least one.
            status:
              type: object
              description: What the gadget is.
              properties:
                phase: {type: string, description: Where the gadget is in its life.}
"""


def test_crd_explain_schema_validation_and_status_subresource(
    cluster: LocalCluster, namespace: str
) -> None:
    cluster.kubectl("apply", "-f", "-", input=CRD)
    cluster.wait_established("gadgets.smoke.restream.dev")

    def explained() -> bool:
        out = cluster.kubectl("explain", "gadget.spec.size", check=False)
        return out.returncode == 0 and "How many sprockets" in out.stdout

    wait_for(explained, "kubectl explain to show the field description", timeout=30)

    bad = cluster.kubectl(
        "apply",
        "-n",
        namespace,
        "-f",
        "-",
        check=False,
        input="apiVersion: smoke.restream.dev/v1\nkind: Gadget\n"
        "metadata: {name: bad}\nspec: {size: 0}\n",
    )
    assert bad.returncode != 0
    assert "spec.size" in bad.stderr and "should be greater than or equal to 1" in bad.stderr

    cluster.kubectl(
        "apply",
        "-n",
        namespace,
        "-f",
        "-",
        input="apiVersion: smoke.restream.dev/v1\nkind: Gadget\n"
        "metadata: {name: good}\nspec: {size: 3}\n",
    )
    # A status written through the main resource is dropped; through the subresource it sticks.
    cluster.kubectl(
        "patch",
        "gadget",
        "good",
        "-n",
        namespace,
        "--type=merge",
        "-p",
        '{"status": {"phase": "ignored"}}',
    )
    assert "status" not in get_json(cluster, "gadget", "good", "-n", namespace)
    cluster.kubectl(
        "patch",
        "gadget",
        "good",
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        '{"status": {"phase": "Assembled"}}',
    )
    got = get_json(cluster, "gadget", "good", "-n", namespace)
    assert got["status"] == {"phase": "Assembled"}
    assert got["spec"] == {"size": 3}


def test_garbage_collector_deletes_dependents(cluster: LocalCluster, namespace: str) -> None:
    cluster.kubectl("create", "configmap", "owner", "-n", namespace)
    uid = get_json(cluster, "configmap", "owner", "-n", namespace)["metadata"]["uid"]  # type: ignore[index]
    dependent = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "dependent",
            "namespace": namespace,
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid}
            ],
        },
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(dependent))
    cluster.kubectl("delete", "configmap", "owner", "-n", namespace)

    def gone() -> bool:
        out = cluster.kubectl("get", "configmap", "dependent", "-n", namespace, check=False)
        return out.returncode != 0 and "NotFound" in out.stderr

    wait_for(gone, "the garbage collector to delete the dependent")


def test_namespace_deletion_finishes(cluster: LocalCluster) -> None:
    cluster.kubectl("create", "namespace", "doomed")
    cluster.kubectl("apply", "-n", "doomed", "-f", "-", input=DEPLOYMENT)
    wait_for(
        lambda: bool(get_json(cluster, "pods", "-n", "doomed")["items"]), "a pod in the namespace"
    )
    cluster.kubectl("delete", "namespace", "doomed", "--timeout=90s")
    out = cluster.kubectl("get", "namespace", "doomed", check=False)
    assert out.returncode != 0 and "NotFound" in out.stderr
