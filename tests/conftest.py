"""Shared fixtures: one local control plane per test session, one namespace per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from hack.localcluster.controlplane import LocalCluster, build_binaries, free_port
from hack.localcluster.operator_process import OperatorProcess, wait_for_webhooks

CHECKOUT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def cluster() -> Iterator[LocalCluster]:
    with LocalCluster(build_binaries()) as c:
        yield c


@pytest.fixture
def namespace(cluster: LocalCluster) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:10]}"
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="session")
def crds(cluster: LocalCluster) -> None:
    cluster.kubectl("apply", "--server-side", "-f", str(CHECKOUT / "crds"))
    cluster.kubectl(
        "wait", "--for=condition=Established", "crd/livestreams.restream.dev", "--timeout=30s"
    )


@pytest.fixture(scope="session")
def operator(
    cluster: LocalCluster, crds: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    """The operator as a process, cluster-wide, polling agents every second, serving its
    admission webhooks on loopback (the apiserver calls them over TLS)."""
    proc = OperatorProcess(cluster.kubeconfig, tmp_path_factory.mktemp("operator") / "operator.log")
    proc.start("--webhook", f"local:127.0.0.1:{free_port()}")
    wait_for_webhooks(cluster)
    yield proc
    proc.stop()
    # A configuration left behind by a killed operator would block every admission.
    for kind in ("validatingwebhookconfiguration", "mutatingwebhookconfiguration"):
        cluster.kubectl("delete", kind, "restream-operator", "--ignore-not-found", check=False)
