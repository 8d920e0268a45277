"""Shared fixtures: one local control plane per test session, one namespace per test.

Media tests (marker `media`, wherever they live) need nginx with the rtmp and stream
modules, ffmpeg and ffprobe (Debian: nginx libnginx-mod-rtmp libnginx-mod-stream ffmpeg).
Run by hand without them they are skipped; under `make test` and in CI they fail
(tests/tools.py), and `make test` says so before it starts (hack/preflight.sh).
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from hack.localcluster.controlplane import LocalCluster, build_binaries, free_port
from hack.localcluster.operator_process import (
    OperatorProcess,
    remove_webhook_configuration,
    wait_for_webhooks,
)
from hack.media.harness import STREAM_MODULE
from restream_operator.render.nginx import RTMP_MODULE
from tests.tools import install_hint, tools_required

CHECKOUT = Path(__file__).resolve().parents[1]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    missing = [t for t in ("nginx", "ffmpeg", "ffprobe") if shutil.which(t) is None]
    missing += [m for m in (RTMP_MODULE, STREAM_MODULE) if not os.path.exists(m)]
    if not missing or tools_required():
        return  # under `make test` and in CI a missing tool must fail the tests, not skip them
    skip = pytest.mark.skip(
        reason=f"media tools missing: {', '.join(missing)} ({install_hint('media')})"
    )
    for item in items:
        if "media" in item.keywords:
            item.add_marker(skip)


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
    cluster.wait_established("livestreams.restream.dev")


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


@pytest.fixture(scope="module")
def webhook_down(cluster: LocalCluster, operator: OperatorProcess) -> Iterator[None]:
    """The operator stopped, for a module: the API server's schema and CEL rules alone
    decide what is stored, and nothing but the test writes a LiveStream's status. Started
    again afterwards, for the modules that need it."""
    operator.stop()  # removes its webhook configuration on the way out
    try:
        gone = cluster.kubectl(
            "get", "validatingwebhookconfiguration", "restream-operator", check=False
        )
        assert "NotFound" in gone.stderr
        yield
    finally:
        operator.start()
        wait_for_webhooks(cluster)
