"""Fixtures of the media tests that also need the local control plane."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hack.localcluster.controlplane import LocalCluster, free_port
from hack.localcluster.operator_process import OperatorProcess, wait_for_webhooks


@pytest.fixture
def private_operator(
    cluster: LocalCluster, operator: OperatorProcess, tmp_path: Path
) -> Iterator[OperatorProcess]:
    """An operator that allows loopback destinations (this test's sinks)."""
    operator.stop()
    proc = OperatorProcess(
        cluster.kubeconfig,
        tmp_path / "operator.log",
        env={"RESTREAM_ALLOW_PRIVATE_DESTINATIONS": "true"},
    )
    try:
        proc.start("--webhook", f"local:127.0.0.1:{free_port()}")
        wait_for_webhooks(cluster)
        yield proc
    finally:
        proc.stop()
        operator.start()
        wait_for_webhooks(cluster)


# The console in a browser, as the cluster tests have it.
from tests.cluster_tests.browser import browser, browsing, console  # noqa: E402, F401
