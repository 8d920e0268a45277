"""The chart's CRD upgrades with the chart: `helm upgrade` from the previous chart (CRD in
Helm's crds/ directory, installed once) adopts and upgrades it, `helm uninstall` keeps
it and the LiveStreams, and `crds.keep=false` lets it go.

These tests delete the CRD, which deletes every LiveStream: they run on a control plane
of their own, never on the session's shared one.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import config as k8s_config

from hack.localcluster.controlplane import LocalCluster, build_binaries
from restream_operator import certs, webhook
from restream_operator.kube import Kube

from .test_chart import _kubeconfig_for_service_account

pytestmark = pytest.mark.cluster

CHECKOUT = Path(__file__).resolve().parents[2]
CHART = CHECKOUT / "charts" / "restream-operator"
RELEASE = "restream-operator"
NAMESPACE = "restream-system"
CRD = "livestreams.restream.dev"
# Where the previous chart kept its CRD: Helm's crds/ directory.
OLD_CRD_PATH = "charts/restream-operator/crds/restream.dev_livestreams.yaml"
PROBE_COLUMN = {
    "name": "UpgradeProbe",
    "type": "string",
    "jsonPath": ".metadata.uid",
    "description": "a column only this test's chart has",
}
# The one-time adoption the README gives for an upgrade from the previous chart.
ADOPT = (
    ("label", "crd", CRD, "app.kubernetes.io/managed-by=Helm", "--overwrite"),
    ("annotate", "crd", CRD, f"meta.helm.sh/release-name={RELEASE}",
     f"meta.helm.sh/release-namespace={NAMESPACE}", "--overwrite"),
)  # fmt: skip


@pytest.fixture(scope="module")
def own_cluster() -> Iterator[LocalCluster]:
    with LocalCluster(build_binaries()) as cluster:
        yield cluster


@pytest.fixture
def charts(tmp_path: Path) -> dict[str, Path]:
    """The previous chart, from git, and two copies of this one: as it is, and with a
    CRD change (an extra printer column) injected into its generated CRD."""
    previous = _previous_chart(tmp_path / "previous")
    changed = tmp_path / "changed" / "restream-operator"
    shutil.copytree(CHART, changed)
    crd_file = changed / "files" / "crds" / "restream.dev_livestreams.yaml"
    doc = yaml.safe_load(crd_file.read_text())
    doc["spec"]["versions"][0]["additionalPrinterColumns"].append(PROBE_COLUMN)
    crd_file.write_text(yaml.safe_dump(doc, sort_keys=False, width=100))
    return {"previous": previous, "current": CHART, "changed": changed}


def _git(*args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", "-C", str(CHECKOUT), *args], capture_output=True,
                          check=check)  # fmt: skip


def _previous_chart(dest: Path) -> Path:
    """The chart at the last commit whose chart had its CRD in crds/ (the parent of the
    commit that made the CRD a template)."""
    rev = _git("rev-list", "-1", "HEAD", "--", OLD_CRD_PATH).stdout.decode().strip()
    assert rev, f"no commit has {OLD_CRD_PATH}: the previous chart needs git history"
    if _git("cat-file", "-e", f"{rev}:{OLD_CRD_PATH}", check=False).returncode != 0:
        rev = f"{rev}^"  # the commit that removed it
    dest.mkdir(parents=True)
    archive = _git("archive", rev, "charts/restream-operator").stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    chart = dest / "charts" / "restream-operator"
    assert (chart / "crds" / "restream.dev_livestreams.yaml").exists()
    assert not (chart / "templates" / "crds.yaml").exists()
    return chart


def helm(cluster: LocalCluster, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory() as home:
        proc = subprocess.run(
            [str(cluster.bin_dir / "helm"), f"--kubeconfig={cluster.kubeconfig}", *args],
            capture_output=True, text=True, timeout=180, check=False,
            env={"HOME": home, "PATH": "/usr/bin:/bin",
                 "HELM_CACHE_HOME": f"{home}/cache", "HELM_CONFIG_HOME": f"{home}/config",
                 "HELM_DATA_HOME": f"{home}/data"},
        )  # fmt: skip
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def _install_or_upgrade(cluster: LocalCluster, verb: str, chart: Path, *extra: str,
                        check: bool = True) -> subprocess.CompletedProcess[str]:  # fmt: skip
    return helm(cluster, verb, RELEASE, str(chart), "--namespace", NAMESPACE,
                "--create-namespace", "--set", "replicaCount=0", *extra, check=check)  # fmt: skip


def _crd(cluster: LocalCluster) -> dict[str, Any]:
    return dict(json.loads(cluster.kubectl("get", "crd", CRD, "-o", "json").stdout))


def _columns(crd: dict[str, Any]) -> list[str]:
    return [c["name"] for c in crd["spec"]["versions"][0]["additionalPrinterColumns"]]


def _livestreams(cluster: LocalCluster, namespace: str) -> dict[str, str]:
    out = cluster.kubectl("get", "livestreams", "-n", namespace, "-o", "json").stdout
    return {i["metadata"]["name"]: i["metadata"]["uid"] for i in json.loads(out)["items"]}


def _create_livestreams(cluster: LocalCluster, namespace: str) -> dict[str, str]:
    cluster.kubectl("create", "namespace", namespace)
    doc = yaml.safe_load((CHECKOUT / "examples" / "api-video-compatible.yaml").read_text())
    for name in ("launch", "studio"):
        doc["metadata"]["name"] = name
        cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(doc))
    made = _livestreams(cluster, namespace)
    assert set(made) == {"launch", "studio"}
    return made


def _clean(cluster: LocalCluster, namespace: str) -> None:
    """Back to an empty cluster: no release, no CRD (so no LiveStream), no namespace."""
    helm(cluster, "uninstall", RELEASE, "--namespace", NAMESPACE, "--wait", check=False)
    cluster.kubectl("delete", "crd", CRD, "--ignore-not-found", "--wait", "--timeout=60s",
                    check=False)  # fmt: skip
    cluster.kubectl("delete", "namespace", namespace, NAMESPACE, "--ignore-not-found",
                    "--wait", "--timeout=90s", timeout=100, check=False)  # fmt: skip


@pytest.fixture
def scratch(own_cluster: LocalCluster) -> Iterator[str]:
    """A namespace name for LiveStreams; afterwards, the cluster is empty again."""
    yield "crd-test"
    _clean(own_cluster, "crd-test")


@pytest.fixture
def previous_release(
    own_cluster: LocalCluster, charts: dict[str, Path], scratch: str
) -> dict[str, str]:
    """The previous chart installed (Helm creates the CRD from crds/, without the marks
    that say which release owns it), and two LiveStreams: name -> uid."""
    _install_or_upgrade(own_cluster, "install", charts["previous"], "--wait")
    return _create_livestreams(own_cluster, scratch)


def test_upgrade_from_the_previous_chart_adopts_and_upgrades_the_crd_and_keeps_it(
    own_cluster: LocalCluster, charts: dict[str, Path], scratch: str,
    previous_release: dict[str, str],
) -> None:  # fmt: skip
    cluster, ns, made = own_cluster, scratch, previous_release
    before = _crd(cluster)
    assert "meta.helm.sh/release-name" not in before["metadata"].get("annotations", {})

    # Helm refuses to take over an object that is not marked as the release's, and
    # says what is missing; nothing changes.
    refused = _install_or_upgrade(cluster, "upgrade", charts["changed"], check=False)
    assert refused.returncode != 0
    assert f'CustomResourceDefinition "{CRD}"' in refused.stderr
    assert "invalid ownership metadata" in refused.stderr
    assert _crd(cluster)["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]

    # The README's one-time adoption, then the upgrade brings the CRD change.
    for args in ADOPT:
        cluster.kubectl(*args)
    _install_or_upgrade(cluster, "upgrade", charts["changed"], "--wait")
    after = _crd(cluster)
    assert _columns(after) == [*_columns(before), PROBE_COLUMN["name"]]
    assert after["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert after["metadata"]["labels"]["helm.sh/chart"].startswith("restream-operator-")
    assert _livestreams(cluster, ns) == made
    printed = cluster.kubectl("get", "livestreams", "-n", ns, "-o", "wide").stdout
    assert "UPGRADEPROBE" in printed.splitlines()[0]
    assert made["launch"] in printed  # the new column prints the object's uid

    # Adopted, the CRD now follows the chart both ways: the column goes again.
    _install_or_upgrade(cluster, "upgrade", charts["current"], "--wait")
    assert _columns(_crd(cluster)) == _columns(before)
    status = json.loads(helm(cluster, "status", RELEASE, "-n", NAMESPACE, "-o", "json").stdout)
    assert status["version"] == 3 and status["info"]["status"] == "deployed"

    # helm uninstall keeps the CRD and with it every LiveStream.
    out = helm(cluster, "uninstall", RELEASE, "--namespace", NAMESPACE, "--wait")
    assert "kept due to the resource policy" in out.stdout + out.stderr
    assert _crd(cluster)["metadata"]["uid"] == before["metadata"]["uid"]
    assert _livestreams(cluster, ns) == made

    # Installed again, the release takes the kept CRD back with no manual step.
    _install_or_upgrade(cluster, "install", charts["current"], "--wait")
    assert _crd(cluster)["metadata"]["uid"] == before["metadata"]["uid"]

    # With crds.keep=false, helm uninstall deletes the CRD, and the LiveStreams go.
    _install_or_upgrade(cluster, "upgrade", charts["current"], "--set", "crds.keep=false")
    assert "helm.sh/resource-policy" not in _crd(cluster)["metadata"].get("annotations", {})
    helm(cluster, "uninstall", RELEASE, "--namespace", NAMESPACE, "--wait")
    cluster.kubectl("wait", "--for=delete", f"crd/{CRD}", "--timeout=60s")
    path = f"/apis/restream.dev/v1alpha1/namespaces/{ns}/livestreams"
    gone = cluster.kubectl("get", "--raw", path, check=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr, gone


def test_helm_take_ownership_is_the_other_way_to_adopt(
    own_cluster: LocalCluster, charts: dict[str, Path], scratch: str,
    previous_release: dict[str, str],
) -> None:  # fmt: skip
    """Helm 3.17 and later: `helm upgrade --take-ownership` adopts without the kubectl step."""
    cluster = own_cluster
    _install_or_upgrade(cluster, "upgrade", charts["changed"], "--take-ownership", "--wait")
    crd = _crd(cluster)
    assert PROBE_COLUMN["name"] in _columns(crd)
    assert crd["metadata"]["annotations"]["meta.helm.sh/release-name"] == RELEASE
    assert _livestreams(cluster, scratch) == previous_release


def test_crds_managed_elsewhere_are_left_alone(
    own_cluster: LocalCluster, charts: dict[str, Path], scratch: str
) -> None:
    """crds.enabled=false: the CRD applied by kubectl (or a GitOps tool) stays as it is
    through install, upgrade and uninstall; and a release that stops managing its CRD
    (true -> false) keeps it."""
    cluster, ns = own_cluster, scratch
    cluster.kubectl("apply", "--server-side", "-f", str(CHECKOUT / "crds"))
    cluster.wait_established(CRD)
    before = _crd(cluster)["metadata"]
    off = ("--set", "crds.enabled=false")
    notes = _install_or_upgrade(cluster, "install", charts["current"], *off, "--wait").stdout
    assert "manages no CRD (crds.enabled=false)" in notes
    _install_or_upgrade(cluster, "upgrade", charts["changed"], *off, "--wait")
    after = _crd(cluster)["metadata"]
    assert (after["resourceVersion"], after.get("annotations")) == (
        before["resourceVersion"], before.get("annotations"))  # fmt: skip
    helm(cluster, "uninstall", RELEASE, "--namespace", NAMESPACE, "--wait")
    assert _crd(cluster)["metadata"]["resourceVersion"] == before["resourceVersion"]

    # A release that managed the CRD and stops (crds.enabled true -> false) leaves it.
    cluster.kubectl("delete", "crd", CRD, "--wait", "--timeout=60s")
    _install_or_upgrade(cluster, "install", charts["current"], "--wait")
    made = _create_livestreams(cluster, ns)
    _install_or_upgrade(cluster, "upgrade", charts["current"], *off, "--wait")
    assert _livestreams(cluster, ns) == made


# ---- from chart 0.2.0: the webhook configuration it leaves -------------------------------

LEGACY_WEBHOOK = "restream-operator"  # chart 0.2.0's operator: one name for every install
LEGACY_OWNER = f"{RELEASE}-cluster"  # 0.2.0's ClusterRole, which owned it


def _chart_at_version(version: str, dest: Path) -> Path:
    """The chart as it was at the newest commit whose Chart.yaml says ``version``."""
    chart_yaml = "charts/restream-operator/Chart.yaml"
    revs = _git("log", "--format=%H", "--", chart_yaml).stdout.decode().split()
    rev = next(
        (r for r in revs
         if yaml.safe_load(_git("show", f"{r}:{chart_yaml}").stdout)["version"] == version),
        None,
    )  # fmt: skip
    assert rev, f"no commit has chart {version}: this test needs git history"
    dest.mkdir(parents=True)
    archive = _git("archive", rev, "charts/restream-operator").stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest / "charts" / "restream-operator"


def _get(cluster: LocalCluster, kind: str, name: str) -> dict[str, Any] | None:
    out = cluster.kubectl("get", kind, name, "-o", "json", check=False)
    return json.loads(out.stdout) if out.returncode == 0 else None


def test_upgrade_from_chart_0_2_0_keeps_its_webhook_until_the_operator_has_its_own(
    own_cluster: LocalCluster, scratch: str, tmp_path: Path
) -> None:
    """Helm would delete 0.2.0's ClusterRole, and Kubernetes with it the webhook
    configuration it owns, before the new operator registers its own: LiveStream writes
    unchecked meanwhile. The upgrade keeps that ClusterRole while the configuration is
    there; the operator (with the chart's RBAC) deletes the configuration once its own
    is registered, never another installation's; the next upgrade drops the ClusterRole."""
    cluster = own_cluster
    old_chart = _chart_at_version("0.2.0", tmp_path / "old")
    _install_or_upgrade(cluster, "install", old_chart, "--wait")
    owner = _get(cluster, "clusterrole", LEGACY_OWNER)
    assert owner is not None, "chart 0.2.0 names its ClusterRole otherwise"
    # What 0.2.0's operator registered: its webhook configuration, owned by that role
    # (scoped to a namespace nobody uses, so that it refuses nothing here).
    _, ca_cert = certs.new_ca("0.2.0's webhook CA", dt.timedelta(days=1))
    service = {"namespace": NAMESPACE, "name": f"{RELEASE}-webhook", "port": 443}
    legacy = webhook.webhook_configuration(
        {"service": service}, certs.pem(ca_cert), LEGACY_WEBHOOK, ("no-such-namespace",)
    )
    legacy["metadata"]["ownerReferences"] = [{
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "name": LEGACY_OWNER, "uid": owner["metadata"]["uid"],
    }]  # fmt: skip
    cluster.kubectl("create", "-f", "-", input=json.dumps(legacy))
    try:
        _install_or_upgrade(cluster, "upgrade", CHART, "--wait")
        kept = _get(cluster, "clusterrole", LEGACY_OWNER)
        assert kept is not None and kept["metadata"]["uid"] == owner["metadata"]["uid"]
        assert not kept.get("rules"), "kept as an owner only: it grants nothing"
        assert "restream.dev/kept-for" in kept["metadata"]["annotations"]
        time.sleep(3)  # the garbage collector deletes a dependent of a deleted owner at once
        assert _get(cluster, "validatingwebhookconfiguration", LEGACY_WEBHOOK) is not None

        # The upgraded operator, as the chart's ServiceAccount, once its own is registered:
        sa = _kubeconfig_for_service_account(cluster, tmp_path / "sa.kubeconfig")
        kube = Kube(k8s_config.new_client_from_config(config_file=str(sa)))  # type: ignore[no-untyped-call]
        other = {"service": {**service, "namespace": "another-installation"}}
        assert not webhook.remove_legacy_validating_configuration(kube, other)
        assert _get(cluster, "validatingwebhookconfiguration", LEGACY_WEBHOOK) is not None
        assert webhook.remove_legacy_validating_configuration(kube, {"service": service})
        assert _get(cluster, "validatingwebhookconfiguration", LEGACY_WEBHOOK) is None

        # Nothing left to keep: the next upgrade removes the old ClusterRole.
        _install_or_upgrade(cluster, "upgrade", CHART, "--wait")
        assert _get(cluster, "clusterrole", LEGACY_OWNER) is None
    finally:
        cluster.kubectl("delete", "validatingwebhookconfiguration", LEGACY_WEBHOOK,
                        "--ignore-not-found", check=False)  # fmt: skip
