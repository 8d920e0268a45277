"""The chart on a real cluster beside others: two releases side by side, each watching its
own namespaces with its own webhook; deploy/ retagged by kustomize's `images:`."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from hack.localcluster import livestreams
from hack.localcluster.controlplane import LocalCluster, free_port
from hack.localcluster.operator_process import OperatorProcess, wait_for_webhooks
from hack.waiting import wait_for

from .test_chart import CHART, CHECKOUT, CRDS_ELSEWHERE, by_kind, helm

pytestmark = pytest.mark.cluster

EXAMPLE = CHECKOUT / "examples" / "api-video-compatible.yaml"
RELEASE = "restream-operator"  # both releases: names are unique per namespace only


# ---- kustomize ------------------------------------------------------------------------


def test_kustomize_images_retag_both_images_of_deploy(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    """An overlay of deploy/ with `images:` for both images: plain `kubectl kustomize`
    (kustomize built into the pinned kubectl) puts the new references everywhere the
    images are used, the media image included (the operator's init container, which
    the operator reads it from), and the old ones nowhere."""
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                # kustomize takes a base by a relative path only
                "resources": [os.path.relpath(CHECKOUT / "deploy", overlay)],
                "images": [
                    {
                        "name": "restream-operator/operator",
                        "newName": "registry.example.com/video/operator",
                        "newTag": "1.2.3",
                    },
                    {
                        "name": "restream-operator/media",
                        "newName": "registry.example.com/video/media",
                        "digest": "sha256:" + "ab" * 32,
                    },
                ],
            }
        )
    )
    out = subprocess.run(
        [str(cluster.bin_dir / "kubectl"), "kustomize", str(overlay)],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    assert "restream-operator/operator:" not in out
    assert "restream-operator/media:" not in out
    (deployment,) = [d for d in yaml.safe_load_all(out) if d and d["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    (operator,) = pod["containers"]
    (media,) = pod["initContainers"]
    assert operator["image"] == "registry.example.com/video/operator:1.2.3"
    assert media["image"] == "registry.example.com/video/media@sha256:" + "ab" * 32
    # The operator takes the media image from that container, and from nowhere else.
    env = {e["name"]: e.get("value") for e in operator["env"]}
    assert env["RESTREAM_MEDIA_IMAGE_CONTAINER"] == media["name"]
    assert not {"RESTREAM_INGEST_IMAGE", "RESTREAM_RELAY_IMAGE"} & env.keys()


# ---- two releases ---------------------------------------------------------------------


@dataclass
class Install:
    """One release: its namespace, the namespace it watches, its values."""

    namespace: str
    watched: str
    values: tuple[str, ...]
    max_restreams: int
    process: OperatorProcess | None = field(default=None)

    def deployment(self, cluster: LocalCluster) -> dict[str, Any]:
        out = cluster.kubectl("get", "deployment", RELEASE, "-n", self.namespace, "-o", "json")
        return dict(json.loads(out.stdout))

    @property
    def cluster_name(self) -> str:
        return f"{RELEASE}-{self.namespace}"


def _kubeconfig_of(cluster: LocalCluster, account: str, namespace: str, path: Path) -> Path:
    """A kubeconfig with the ServiceAccount's token: the operator runs with the release's
    RBAC and nothing more."""
    token = cluster.kubectl("create", "token", account, "-n", namespace, "--duration=1h").stdout
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "clusters": admin["clusters"],
        "users": [{"name": "sa", "user": {"token": token.strip()}}],
        "contexts": [{"name": "sa", "context": {"cluster": "local", "user": "sa"}}],
        "current-context": "sa",
    }))  # fmt: skip
    return path


def _start_operator(cluster: LocalCluster, install: Install, tmp_path: Path) -> OperatorProcess:
    """The release's operator as a process, as its pod would run it: the Deployment's
    environment and namespaces, its ServiceAccount, and its pod (on a simulated node,
    where the image cannot run) as the one it reads the media image from. Only the
    webhook is served on loopback, where the API server can call it."""
    container = install.deployment(cluster)["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    pods = json.loads(cluster.kubectl(
        "get", "pods", "-n", install.namespace, "-o", "json",
        "-l", f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/name=restream-operator",
    ).stdout)["items"]  # fmt: skip
    (pod,) = pods
    env |= {
        "POD_NAME": pod["metadata"]["name"],
        # Nothing here resolves public names; the tests' usual agent polling.
        "RESTREAM_RESOLVE_DESTINATIONS": "false",
        "RESTREAM_AGENT_POLL_SECONDS": "1",
    }
    kubeconfig = _kubeconfig_of(cluster, RELEASE, install.namespace,
                                tmp_path / f"{install.namespace}.kubeconfig")  # fmt: skip
    process = OperatorProcess(kubeconfig, tmp_path / f"{install.namespace}.log", env=env)
    namespaces = [a for a in container["args"] if a.startswith("--namespace=")]
    assert namespaces == [f"--namespace={install.watched}"]
    process.start(*namespaces, "--webhook", f"local:127.0.0.1:{free_port()}")
    return process


def _livestream(name: str, restreams: int) -> str:
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["metadata"]["name"] = name
    first = doc["spec"]["restreams"][0]
    extra = [{**first, "name": f"Extra{i}"} for i in range(restreams)]
    doc["spec"]["restreams"] = (doc["spec"]["restreams"] + extra)[:restreams]
    return json.dumps(doc)


@pytest.fixture
def two_releases(
    cluster: LocalCluster, crds: None, operator: OperatorProcess, tmp_path: Path
) -> Iterator[list[Install]]:
    """Two releases of the same name in two namespaces, each watching one namespace of
    its own; the second pulls from a private registry. The CRD is the session's (as with
    the first release's, crds.enabled=false on both)."""
    suffix = uuid.uuid4().hex[:6]
    installs = [
        Install(f"ops-a-{suffix}", f"live-a-{suffix}", ("operator.maxRestreams=1",), 1),
        Install(
            f"ops-b-{suffix}",
            f"live-b-{suffix}",
            (
                "operator.maxRestreams=2",
                "imagePullSecrets[0].name=regcred",
                "mediaImage.repository=registry.example.com/video/media",
                "mediaImage.tag=7.7.7",
                "mediaImage.pullPolicy=Always",
            ),
            2,
        ),
    ]
    operator.stop()  # the suite's cluster-wide operator would reconcile every namespace
    try:
        for install in installs:
            cluster.kubectl("create", "namespace", install.watched)
            values = (*install.values, f"watchNamespaces={{{install.watched}}}")
            sets = [a for v in values for a in ("--set", v)] + list(CRDS_ELSEWHERE)
            helm(cluster, "install", RELEASE, str(CHART), "--namespace", install.namespace,
                 "--create-namespace", "--wait", "--timeout", "90s", *sets)  # fmt: skip
        for install in installs:
            install.process = _start_operator(cluster, install, tmp_path)
        yield installs
    finally:
        for install in installs:
            if install.process is not None:
                print(install.process.logs()[-3000:])
                install.process.stop()
            helm(cluster, "uninstall", RELEASE, "--namespace", install.namespace, "--wait",
                 check=False)  # fmt: skip
            for ns in (install.watched, install.namespace):
                cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)
        operator.start()
        wait_for_webhooks(cluster)


def test_two_releases_side_by_side_each_with_its_namespaces_and_webhook(
    cluster: LocalCluster, two_releases: list[Install]
) -> None:
    a, b = two_releases
    # Nothing cluster-scoped is shared: each release has its own roles and bindings.
    for kind in ("clusterroles", "clusterrolebindings"):
        names = cluster.kubectl("get", kind, "-o", "name", "-l",
                                f"app.kubernetes.io/instance={RELEASE}").stdout.split()  # fmt: skip
        for install in (a, b):
            assert f"{kind[:-1]}.rbac.authorization.k8s.io/{install.cluster_name}-cluster" in names
    # Each operator registers a webhook configuration of its own, for its namespace only.
    for install in (a, b):
        found = wait_for(
            lambda i=install: cluster.kubectl(  # type: ignore[misc]
                "get", "validatingwebhookconfiguration", i.cluster_name, "-o", "json",
                check=False).stdout or None,
            f"the webhook configuration {install.cluster_name}", timeout=30,
        )  # fmt: skip
        config = json.loads(str(found))
        assert config["webhooks"][0]["namespaceSelector"]["matchExpressions"][0]["values"] == [
            install.watched
        ]
        assert config["metadata"]["ownerReferences"][0]["name"] == f"{install.cluster_name}-cluster"

    # A LiveStream in each watched namespace, as many destinations as its release allows:
    # each is reconciled (Ready) by its own operator, with its own release's settings.
    for install in (a, b):
        doc = _livestream("launch", install.max_restreams)
        cluster.kubectl("apply", "-n", install.watched, "-f", "-", input=doc)
    for install in (a, b):
        wait_for(lambda i=install: livestreams.ready(cluster, i.watched, "launch"),  # type: ignore[misc]
                 f"the LiveStream in {install.watched} to be Ready", timeout=60)  # fmt: skip

    def media_pods(ns: str) -> list[dict[str, Any]]:
        out = json.loads(cluster.kubectl("get", "deployments", "-n", ns, "-o", "json").stdout)
        return [d["spec"]["template"]["spec"] for d in out["items"]]

    pods_a, pods_b = media_pods(a.watched), media_pods(b.watched)
    assert len(pods_a) == 2 and len(pods_b) == 3  # the ingest and a relay each destination
    for pod in pods_b:  # the release with a private registry: its image and pull Secret
        assert pod["imagePullSecrets"] == [{"name": "regcred"}]
        assert pod["containers"][0]["image"] == "registry.example.com/video/media:7.7.7"
        assert pod["containers"][0]["imagePullPolicy"] == "Always"
    media_a = by_kind([a.deployment(cluster)], "Deployment")[0]["spec"]["template"]["spec"]
    for pod in pods_a:  # the other: the chart's default media image, no pull Secrets
        assert "imagePullSecrets" not in pod
        assert pod["containers"][0]["image"] == media_a["initContainers"][0]["image"]

    # One destination too many is refused in each namespace, by that release's webhook
    # with that release's limit (the other's, asked, would say another number or allow it).
    for install in (a, b):
        doc = _livestream("too-many", install.max_restreams + 1)
        refused = cluster.kubectl("apply", "--dry-run=server", "-n", install.watched, "-f", "-",
                                  input=doc, check=False)  # fmt: skip
        assert refused.returncode != 0, refused.stdout
        assert "denied the request" in refused.stderr
        assert f"more than this operator allows ({install.max_restreams})" in refused.stderr
