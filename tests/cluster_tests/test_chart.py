"""The Helm chart and deploy/: lint, render, install, least-privilege RBAC, GitOps safety."""

from __future__ import annotations

import json
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from hack import deploy as deploy_gen
from hack.localcluster import livestreams
from hack.localcluster.controlplane import LocalCluster, free_port
from hack.localcluster.operator_process import OperatorProcess, wait_for_webhooks
from hack.waiting import wait_for
from restream_operator.settings import DEFAULT_EGRESS_DENIED_CIDRS, Settings

pytestmark = pytest.mark.cluster

CHECKOUT = Path(__file__).resolve().parents[2]
CHART = CHECKOUT / "charts" / "restream-operator"
RELEASE = "restream-operator"
NAMESPACE = "restream-system"
SERVICE_ACCOUNT = f"system:serviceaccount:{NAMESPACE}:{RELEASE}"
GENERATED_CRD = CHECKOUT / "crds" / "restream.dev_livestreams.yaml"
# The session's CRD is applied by kubectl (the `crds` fixture): every release installed on
# the shared cluster leaves it to that, as with CRDs managed separately. (Releases that
# own their CRD: test_chart_crds.py, on a cluster of its own.)
CRDS_ELSEWHERE = ("--set", "crds.enabled=false")


def helm(cluster: LocalCluster, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [str(cluster.bin_dir / "helm"), f"--kubeconfig={cluster.kubeconfig}", *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def template(cluster: LocalCluster, *sets: str) -> list[dict[str, Any]]:
    args = ["template", RELEASE, str(CHART), "--namespace", NAMESPACE]
    for s in sets:
        args += ["--set", s]
    return [d for d in yaml.safe_load_all(helm(cluster, *args).stdout) if d]


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


# ---- rendering ------------------------------------------------------------------------


def test_helm_lint_default_and_non_default_values(cluster: LocalCluster) -> None:
    helm(cluster, "lint", str(CHART))
    helm(
        cluster,
        "lint",
        str(CHART),
        "--set",
        "webhook.certManager.enabled=true",
        "--set",
        "watchNamespaces={media,live}",
    )


def test_default_render(cluster: LocalCluster) -> None:
    docs = template(cluster)
    deployment = by_kind(docs, "Deployment")[0]
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert container["image"] == "restream-operator/operator:0.1.0"
    assert "--webhook=cluster" in container["args"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    env = {e["name"]: e.get("value") for e in container["env"]}
    # The media image is the init container's, which the operator reads from its pod.
    (media,) = pod["initContainers"]
    assert media["image"] == "restream-operator/media:0.1.0"
    assert env["RESTREAM_MEDIA_IMAGE_CONTAINER"] == media["name"]
    assert "RESTREAM_RELAY_IMAGE" not in env and "imagePullSecrets" not in pod
    assert env["RESTREAM_MAX_RESTREAMS"] == "5"
    assert env["RESTREAM_WEBHOOK_CONFIGURATION_NAME"] == f"{RELEASE}-{NAMESPACE}"
    assert {d["kind"] for d in docs} == {
        "CustomResourceDefinition",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "Deployment",
        "Service",
    }
    # Pull Secrets: the operator's pod's, and by name for every ingest and relay pod.
    private = template(cluster, "imagePullSecrets[0].name=regcred")
    pod = by_kind(private, "Deployment")[0]["spec"]["template"]["spec"]
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert _operator_settings(private).image_pull_secrets == ["regcred"]


def test_non_default_render(cluster: LocalCluster) -> None:
    docs = template(
        cluster,
        "webhook.certManager.enabled=true",
        "watchNamespaces={media,live}",
        "operator.maxRestreams=20",
        "image.tag=dev",
    )
    container = by_kind(docs, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "restream-operator/operator:dev"
    assert "--namespace=media" in container["args"]
    assert "--webhook-cert-dir=/tls" in container["args"]
    assert {"Issuer", "Certificate"} <= {d["kind"] for d in docs}
    bindings = by_kind(docs, "RoleBinding")
    assert {b["metadata"]["namespace"] for b in bindings} == {"media", "live", NAMESPACE}
    assert [b["metadata"]["name"] for b in by_kind(docs, "ClusterRoleBinding")] == [
        f"{RELEASE}-{NAMESPACE}-cluster"
    ]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["RESTREAM_MAX_RESTREAMS"] == "20"
    no_webhook = template(cluster, "webhook.enabled=false")
    # The operator's metrics Service alone (tests/cluster_tests/test_chart_metrics.py).
    services = [s["metadata"]["name"] for s in by_kind(no_webhook, "Service")]
    assert services == [f"{RELEASE}-metrics"]


def test_the_crd_is_a_template_kept_on_uninstall(cluster: LocalCluster) -> None:
    generated = yaml.safe_load(GENERATED_CRD.read_text())
    (crd,) = by_kind(template(cluster), "CustomResourceDefinition")
    assert crd["spec"] == generated["spec"]
    assert crd["metadata"]["name"] == generated["metadata"]["name"]
    assert crd["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    assert generated["metadata"]["labels"].items() <= crd["metadata"]["labels"].items()
    assert crd["metadata"]["labels"]["app.kubernetes.io/instance"] == RELEASE
    (not_kept,) = by_kind(template(cluster, "crds.keep=false"), "CustomResourceDefinition")
    assert "annotations" not in not_kept["metadata"]
    assert not_kept["spec"] == generated["spec"]
    assert not by_kind(template(cluster, "crds.enabled=false"), "CustomResourceDefinition")
    # Helm's crds/ directory (installed once, never upgraded) is gone: one CRD source.
    assert not (CHART / "crds").exists()


def _operator_settings(docs: list[dict[str, Any]]) -> Settings:
    container = by_kind(docs, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]
    return Settings.from_env({e["name"]: e["value"] for e in container["env"] if "value" in e})


def test_network_policy_settings_name_the_charts_own_operator_pods(cluster: LocalCluster) -> None:
    """The NetworkPolicies open the agents to the pods these settings select: they must
    be the chart's operator pods, whatever the release is called."""
    for release, namespace in ((RELEASE, NAMESPACE), ("live", "media-ops")):
        args = ["template", release, str(CHART), "--namespace", namespace]
        docs = [d for d in yaml.safe_load_all(helm(cluster, *args).stdout) if d]
        settings = _operator_settings(docs)
        pod_labels = by_kind(docs, "Deployment")[0]["spec"]["template"]["metadata"]["labels"]
        assert settings.operator_namespace == namespace
        assert settings.operator_pod_labels.items() <= pod_labels.items()
        assert settings.operator_pod_labels["app.kubernetes.io/instance"] == release
    # the chart's defaults are the operator's
    defaults = _operator_settings(template(cluster))
    assert defaults.egress_denied_cidrs == list(DEFAULT_EGRESS_DENIED_CIDRS)
    assert (defaults.dns_namespace, defaults.dns_pod_labels) == (
        Settings().dns_namespace,
        Settings().dns_pod_labels,
    )
    custom = _operator_settings(
        template(
            cluster,
            "operator.networkPolicy.podCIDRs={10.244.0.0/16}",
            "operator.networkPolicy.serviceCIDRs={10.96.0.0/12,fd00:10:96::/108}",
            "operator.networkPolicy.dnsNamespace=dns",
        )
    )
    assert custom.pod_cidrs == ["10.244.0.0/16"]
    assert custom.service_cidrs == ["10.96.0.0/12", "fd00:10:96::/108"]
    assert custom.dns_namespace == "dns"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("replicaCount=3", "maximum"),
        ("operator.maxRestreams=51", "maximum"),
        ("image.pullPolicy=Sometimes", "value must be one of"),
        ("imagePullSecrets[0].name=Reg_Cred", "does not match pattern"),
        ("operator.networkPolicy.dnsNamespace=Kube_System", "does not match pattern"),
        ("operator.networkPolicy.podCIDRs=10.0.0.0/8", "want array"),
        ("crds.keep=sometimes", "want boolean"),
        ("crds.install=true", "additional properties 'install' not allowed"),
    ],
)
def test_values_schema_refuses_bad_values(cluster: LocalCluster, value: str, message: str) -> None:
    out = helm(cluster, "template", RELEASE, str(CHART), "--set", value, check=False)
    assert out.returncode != 0
    assert message in out.stderr


# ---- the console ----------------------------------------------------------------------

CONSOLE = f"{RELEASE}-console"
CONSOLE_ON = ("console.enabled=true", "console.publicURLs={https://console.example.com}")


def test_the_console_is_off_by_default(cluster: LocalCluster) -> None:
    names = [d["metadata"]["name"] for d in template(cluster)]
    assert not [n for n in names if "console" in n]


def _matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return selector.items() <= labels.items()


def test_the_console_has_an_identity_and_no_rights(cluster: LocalCluster) -> None:
    docs = template(cluster, *CONSOLE_ON, "console.replicas=2")
    (account,) = [d for d in by_kind(docs, "ServiceAccount") if d["metadata"]["name"] == CONSOLE]
    assert account["automountServiceAccountToken"] is False
    for binding in by_kind(docs, "RoleBinding") + by_kind(docs, "ClusterRoleBinding"):
        assert CONSOLE not in json.dumps(binding["subjects"]), binding["metadata"]["name"]
    (deployment,) = [d for d in by_kind(docs, "Deployment") if d["metadata"]["name"] == CONSOLE]
    assert deployment["spec"]["replicas"] == 2
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == CONSOLE
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["image"] == "restream-operator/operator:0.1.0"
    args = container["args"]
    assert args[:2] == ["console", "--in-cluster"]
    assert "--public-url=https://console.example.com" in args
    assert "--listen=0.0.0.0:8080" in args
    assert not [a for a in args if a.startswith(("--kubeconfig", "--context", "--api-server"))]
    # The cluster's CA from kube-root-ca.crt, and no token anywhere in the pod.
    (ca,) = [v for v in pod["volumes"] if v["name"] == "cluster-ca"]
    assert ca["configMap"]["name"] == "kube-root-ca.crt"
    assert f"--api-ca-file={container['volumeMounts'][0]['mountPath']}/ca.crt" in args
    assert "token" not in json.dumps(pod["volumes"]).lower()
    assert "env" not in container and "envFrom" not in container
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["resources"]["limits"]["memory"]

    # Its pods are its own: the operator's Deployment does not select them, nor do the
    # NetworkPolicies that let the operator's pods reach the agents.
    console_pods = deployment["spec"]["template"]["metadata"]["labels"]
    operator = next(d for d in by_kind(docs, "Deployment") if d["metadata"]["name"] == RELEASE)
    assert not _matches(operator["spec"]["selector"]["matchLabels"], console_pods)
    assert not _matches(_operator_settings([operator]).operator_pod_labels, console_pods)
    assert not _matches(deployment["spec"]["selector"]["matchLabels"],
                        operator["spec"]["template"]["metadata"]["labels"])  # fmt: skip
    (service,) = [d for d in by_kind(docs, "Service") if d["metadata"]["name"] == CONSOLE]
    assert service["spec"]["type"] == "ClusterIP"
    assert _matches(service["spec"]["selector"], console_pods)
    assert service["spec"]["ports"][0]["targetPort"] == "http"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (("console.enabled=true",), "console.publicURLs: give the URL"),
        (("console.enabled=true", "console.publicURLs={https://a.example.com/console}"),
         "does not match pattern"),
        (("console.enabled=true", "console.publicURLs={console.example.com}"),
         "does not match pattern"),
        ((*CONSOLE_ON, "console.port=80"), "minimum"),
    ],
)  # fmt: skip
def test_console_values_that_cannot_work_are_refused(
    cluster: LocalCluster, values: tuple[str, ...], message: str
) -> None:
    args = ["template", RELEASE, str(CHART)]
    for value in values:
        args += ["--set", value]
    out = helm(cluster, *args, check=False)
    assert out.returncode != 0
    assert message in out.stderr


def test_the_installed_consoles_account_may_do_nothing(cluster: LocalCluster, crds: None) -> None:
    """Real RBAC: what the API server lets the console's own ServiceAccount do is what
    it lets any authenticated user do (discovery, asking who it is), and nothing more:
    were its token ever mounted, the pod could list nothing itself."""
    release, namespace = "console-test", "console-test"
    try:
        sets = [a for v in (*CONSOLE_ON, "replicaCount=0", "webhook.enabled=false",
                            "crds.enabled=false") for a in ("--set", v)]  # fmt: skip
        out = helm(cluster, "install", release, str(CHART), "--namespace", namespace,
                   "--create-namespace", "--wait", "--timeout", "90s", *sets)  # fmt: skip
        assert "console.example.com" in out.stdout  # the notes say where it is served
        account = f"system:serviceaccount:{namespace}:{release}-restream-operator-console"
        for where in (namespace, "default"):
            assert _can_i_list(cluster, where, account) == set()
        asked = [("list", "livestreams.restream.dev"), ("get", "secrets"),
                 ("create", "tokenreviews"), ("create", "subjectaccessreviews")]  # fmt: skip
        for verb, resource in asked:
            allowed = cluster.kubectl("auth", "can-i", verb, resource, f"--as={account}",
                                      "-A", check=False)  # fmt: skip
            assert allowed.stdout.strip() == "no", (verb, resource)
        # The CA the pod mounts instead of a token's ca.crt is there to mount.
        ca = cluster.kubectl("get", "configmap", "kube-root-ca.crt", "-n", namespace,
                             "-o", "jsonpath={.data.ca\\.crt}").stdout  # fmt: skip
        assert ca.startswith("-----BEGIN CERTIFICATE-----")
        deployment = json.loads(cluster.kubectl(
            "get", "deployment", f"{release}-restream-operator-console", "-n", namespace,
            "-o", "json").stdout)  # fmt: skip
        assert deployment["status"].get("availableReplicas") == 1
    finally:
        helm(cluster, "uninstall", release, "--namespace", namespace, "--wait", check=False)
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def test_committed_deploy_and_chart_crds_are_generated(cluster: LocalCluster) -> None:
    rendered = deploy_gen.render(str(cluster.bin_dir / "helm"))
    committed = {p.name: p.read_text() for p in (CHECKOUT / "deploy").glob("*.yaml")}
    assert committed == rendered, "deploy/ is stale: run `make deploy` and commit"
    chart_crd = (CHART / "files" / "crds" / "restream.dev_livestreams.yaml").read_text()
    assert chart_crd == GENERATED_CRD.read_text(), "the chart's CRD is stale: run `make crd`"


def test_deploy_manifests_applied_twice_change_nothing(cluster: LocalCluster, crds: None) -> None:
    deploy = str(CHECKOUT / "deploy")
    crd_before = _crd_as_applied(cluster)
    try:
        cluster.kubectl("apply", "--server-side", "-k", deploy)
        scope = ("deployments,services,serviceaccounts", "-n", NAMESPACE)
        first = _resource_versions(cluster, *scope)
        roles = _resource_versions(
            cluster,
            "clusterroles,clusterrolebindings",
            "-l",
            "app.kubernetes.io/name=restream-operator",
        )
        cluster.kubectl("apply", "--server-side", "-k", deploy)
        # (Deployments also move with their status: compare spec generation instead.)
        assert _resource_versions(cluster, "serviceaccounts,services", "-n", NAMESPACE) == {
            k: v for k, v in first.items() if not k.startswith("Deployment/")
        }
        assert (
            _resource_versions(
                cluster,
                "clusterroles,clusterrolebindings",
                "-l",
                "app.kubernetes.io/name=restream-operator",
            )
            == roles
        )
        diff = cluster.kubectl("diff", "-k", deploy, check=False)
        assert diff.returncode == 0, diff.stdout
    finally:
        # Not the namespace nor the CRD: the chart is installed there next.
        cluster.kubectl(
            "delete",
            "-f",
            str(CHECKOUT / "deploy" / "operator.yaml"),
            "-f",
            str(CHECKOUT / "deploy" / "rbac.yaml"),
            "--ignore-not-found",
            "--wait",
            check=False,
        )
        # deploy/'s CRD carries the chart's labels and keep policy: the session's CRD
        # goes back to what the `crds` fixture applied (same field manager: server-side
        # apply drops what only deploy/ set).
        cluster.kubectl("apply", "--server-side", "-f", str(GENERATED_CRD))
        assert _crd_as_applied(cluster) == crd_before


def _crd_as_applied(cluster: LocalCluster) -> dict[str, Any]:
    crd = json.loads(cluster.kubectl("get", "crd", "livestreams.restream.dev", "-o", "json").stdout)
    meta = crd["metadata"]
    return {"labels": meta.get("labels"), "annotations": meta.get("annotations"),
            "spec": crd["spec"]}  # fmt: skip


# ---- installed ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def installed(cluster: LocalCluster, crds: None) -> Iterator[None]:
    """The chart installed with `helm install --wait` (kwok makes its pod Ready; the
    image does not run on a simulated node, so the tests run the operator themselves
    with the chart's ServiceAccount)."""
    helm(
        cluster,
        "install",
        RELEASE,
        str(CHART),
        "--namespace",
        NAMESPACE,
        "--create-namespace",
        "--wait",
        "--timeout",
        "90s",
        *CRDS_ELSEWHERE,
    )
    yield
    helm(cluster, "uninstall", RELEASE, "--namespace", NAMESPACE, "--wait", check=False)
    cluster.kubectl("delete", "namespace", NAMESPACE, "--wait=false", check=False)


def test_chart_is_installed_and_ready(cluster: LocalCluster, installed: None) -> None:
    # helm --wait returns at Ready; available is minReadySeconds later.
    cluster.kubectl("rollout", "status", f"deployment/{RELEASE}", "-n", NAMESPACE, "--timeout=60s")
    out = cluster.kubectl("get", "deployment", RELEASE, "-n", NAMESPACE, "-o", "json")
    status = json.loads(out.stdout)["status"]
    assert status.get("availableReplicas") == 1
    dry = cluster.kubectl("apply", "-k", str(CHECKOUT / "deploy"), "--dry-run=server")
    assert "error" not in dry.stderr.lower()
    assert "deployment.apps/restream-operator" in dry.stdout


def _readme_rbac() -> set[tuple[str, str, frozenset[str]]]:
    text = (CHECKOUT / "README.md").read_text()
    section = text.split("### RBAC", 1)[1].split("\n## ", 1)[0].split("\n### ", 1)[0]
    rows = set()
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[2] and cells[0] not in ("resource", "---"):
            rows.add((cells[0], cells[1], frozenset(cells[2].split())))
    return rows


def _can_i_list(
    cluster: LocalCluster, namespace: str, user: str = SERVICE_ACCOUNT
) -> set[tuple[str, str, frozenset[str]]]:
    out = cluster.kubectl("auth", "can-i", "--list", f"--as={user}", "-n", namespace).stdout
    rows = set()
    for line in out.splitlines()[1:]:
        cells = re.split(r"\s{2,}", line.strip())
        if len(cells) != 4 or cells[1] != "[]":
            continue  # non-resource URLs: what every authenticated user may read
        resource, names, verbs = cells[0], cells[2].strip("[]"), cells[3].strip("[]")
        if resource.startswith("selfsubject"):
            continue  # every authenticated user may ask what it may do
        rows.add((resource, names, frozenset(verbs.split())))
    return rows


def _kubeconfig_for_service_account(cluster: LocalCluster, path: Path) -> Path:
    token = cluster.kubectl(
        "create", "token", RELEASE, "-n", NAMESPACE, "--duration=1h"
    ).stdout.strip()
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": admin["clusters"],
        "users": [{"name": "operator", "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "local", "user": "operator"}}],
        "current-context": "sa",
    }
    path.write_text(json.dumps(config))
    return path


def test_rbac_is_what_the_readme_lists(cluster: LocalCluster, installed: None) -> None:
    assert _can_i_list(cluster, "default") == _readme_rbac()


def test_operator_with_only_the_charts_rbac_runs_a_livestream_lifecycle(
    cluster: LocalCluster,
    installed: None,
    operator: OperatorProcess,
    namespace: str,
    tmp_path: Path,
) -> None:
    operator.stop()  # the suite's admin-powered operator steps aside
    scoped = OperatorProcess(
        _kubeconfig_for_service_account(cluster, tmp_path / "sa.kubeconfig"),
        tmp_path / "scoped-operator.log",
        # as the chart's Deployment sets them: its RBAC allows these names only
        env={
            "RESTREAM_WEBHOOK_OWNER_CLUSTERROLE": f"{RELEASE}-{NAMESPACE}-cluster",
            "RESTREAM_WEBHOOK_CONFIGURATION_NAME": f"{RELEASE}-{NAMESPACE}",
        },
    )
    try:
        scoped.start("--webhook", f"local:127.0.0.1:{free_port()}")
        wait_for_webhooks(cluster, name=f"{RELEASE}-{NAMESPACE}")
        owners = json.loads(
            cluster.kubectl(
                "get", "validatingwebhookconfiguration", f"{RELEASE}-{NAMESPACE}", "-o", "json"
            ).stdout
        )["metadata"]["ownerReferences"]
        assert owners[0]["name"] == f"{RELEASE}-{NAMESPACE}-cluster"

        cluster.kubectl(
            "create", "secret", "generic", "yt", "-n", namespace, "--from-literal=key=yt-key-1"
        )
        doc = yaml.safe_load((CHECKOUT / "examples" / "api-video-compatible.yaml").read_text())
        doc["spec"]["restreams"][0] = {
            "name": "Youtube",
            "serverUrl": "rtmp://a.rtmp.youtube.com/live2",
            "streamKeySecretRef": {"name": "yt", "key": "key"},
        }
        cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(doc))

        wait_for(lambda: livestreams.ready(cluster, namespace, "launch"),
                 "the LiveStream to be Ready under the chart's RBAC", timeout=60)  # fmt: skip
        del doc["spec"]["restreams"][1]
        cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(doc))
        wait_for(
            lambda: (
                "twitch"
                not in cluster.kubectl("get", "deployments", "-n", namespace, "-o", "name").stdout
            ),
            "the removed destination's relay to go",
        )
        cluster.kubectl("delete", "livestream", "launch", "-n", namespace, "--timeout=60s")
        wait_for(
            lambda: (
                not cluster.kubectl(
                    "get", "deployments", "-n", namespace, "-o", "name"
                ).stdout.strip()
            ),
            "the children to be garbage-collected",
        )
        # RBAC denials only: earlier tests' namespaces may still be terminating, and the
        # API refuses writes there with a 403 that says so (NamespaceTerminating).
        denied = [
            line
            for line in scoped.logs().splitlines()
            if "Forbidden" in line and "is being terminated" not in line
        ]
        assert not denied, denied[-5:]
    finally:
        scoped.stop()
        operator.start()
        wait_for_webhooks(cluster)


def test_uninstall_removes_the_webhook_configurations_it_owns(
    cluster: LocalCluster, crds: None, operator: OperatorProcess, tmp_path: Path
) -> None:
    helm(
        cluster,
        "install",
        "owner-test",
        str(CHART),
        "--namespace",
        "owner-test",
        "--create-namespace",
        "--set",
        "replicaCount=0",
        *CRDS_ELSEWHERE,
    )
    operator.stop()
    owned = OperatorProcess(
        cluster.kubeconfig,
        tmp_path / "owned.log",
        env={
            "RESTREAM_WEBHOOK_OWNER_CLUSTERROLE": "owner-test-restream-operator-owner-test-cluster"
        },
    )
    try:
        owned.start("--webhook", f"local:127.0.0.1:{free_port()}")
        wait_for_webhooks(cluster)
        owned.stop(signal.SIGKILL)  # a killed operator cleans nothing up
        helm(cluster, "uninstall", "owner-test", "--namespace", "owner-test", "--wait")
        wait_for(
            lambda: (
                cluster.kubectl(
                    "get", "validatingwebhookconfiguration", "restream-operator", check=False
                ).returncode
                != 0
            ),
            "the garbage collector to remove the orphaned webhook configuration",
        )
    finally:
        owned.stop()
        cluster.kubectl("delete", "namespace", "owner-test", "--wait=false", check=False)
        operator.start()
        wait_for_webhooks(cluster)


# ---- GitOps ---------------------------------------------------------------------------


def _resource_versions(cluster: LocalCluster, *args: str) -> dict[str, str]:
    out = cluster.kubectl("get", *args, "-o", "json")
    items = json.loads(out.stdout).get("items", [])
    return {
        f"{i['kind']}/{i['metadata'].get('namespace', '')}/{i['metadata']['name']}": i["metadata"][
            "resourceVersion"
        ]
        for i in items
    }


def test_server_side_apply_twice_changes_nothing_and_diff_shows_no_drift(
    cluster: LocalCluster, operator: OperatorProcess, namespace: str
) -> None:
    example = str(CHECKOUT / "examples" / "api-video-compatible.yaml")
    cluster.kubectl("apply", "--server-side", "-n", namespace, "-f", example)

    wait_for(lambda: livestreams.ready(cluster, namespace, "launch"),
             "the LiveStream to be reconciled")  # fmt: skip
    before = json.loads(
        cluster.kubectl("get", "livestream", "launch", "-n", namespace, "-o", "json").stdout
    )
    again = cluster.kubectl("apply", "--server-side", "-n", namespace, "-f", example)
    assert "serverside-applied" in again.stdout
    after = json.loads(
        cluster.kubectl(
            "get", "livestream", "launch", "-n", namespace, "-o", "json", "--show-managed-fields"
        ).stdout
    )
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    assert after["spec"] == before["spec"]
    # The operator never took ownership of any spec field.
    for entry in after["metadata"]["managedFields"]:
        if entry["manager"] == "kubectl":
            continue
        assert "f:spec" not in json.dumps(entry.get("fieldsV1", {})), entry["manager"]
    for flags in ([], ["--server-side"]):
        diff = cluster.kubectl("diff", *flags, "-n", namespace, "-f", example, check=False)
        assert diff.returncode == 0, f"kubectl diff {flags} shows drift:\n{diff.stdout}"
