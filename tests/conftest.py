"""Shared fixtures: one local control plane per test session, one namespace per test."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.controlplane import LocalCluster, build_binaries, free_port
from tests.operator_process import OperatorProcess

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
    admission webhook on loopback (the apiserver calls it over TLS)."""
    proc = OperatorProcess(cluster.kubeconfig, tmp_path_factory.mktemp("operator") / "operator.log")
    proc.start("--webhook", f"local:127.0.0.1:{free_port()}")
    wait_for_webhooks(cluster)
    yield proc
    proc.stop()
    remove_webhook_configuration(cluster)


def remove_webhook_configuration(cluster: LocalCluster) -> None:
    """A configuration left behind by a killed operator would block every admission."""
    cluster.kubectl(
        "delete",
        "validatingwebhookconfiguration",
        "restream-operator",
        "--ignore-not-found",
        check=False,
    )


def wait_for_webhooks(cluster: LocalCluster, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = cluster.kubectl(
            "get", "validatingwebhookconfiguration", "restream-operator", check=False
        )
        if out.returncode == 0:
            return
        time.sleep(0.2)
    raise AssertionError("the operator did not register its admission webhook")
