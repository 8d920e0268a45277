"""The node tier's fixtures: a local control plane plus a real node (hack/localcluster/node.py).

One node per test module (it starts in about 10 s warm) and, on it, one namespace per
module; a module's finalizer also proves that the teardown left nothing on the host.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hack.localcluster.controlplane import LocalCluster, build_binaries
from hack.localcluster.node import (
    BUSYBOX_IMAGE,
    REAL_NODE_SELECTOR,
    REAL_NODE_TOLERATION,
    NodeCluster,
    missing_requirements,
)
from hack.waiting import wait_for

CHECKOUT = Path(__file__).resolve().parents[2]


def run_module(
    state_dir: Path,
    module: str,
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    """`python -m module args` as the Makefile runs it (`hack.localcluster`, `hack.demo`),
    its .cluster directory at ``state_dir``."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=CHECKOUT, capture_output=True, text=True, timeout=timeout, check=False,
        env={**os.environ, "RESTREAM_CLUSTER_DIR": str(state_dir), **(env or {})},
    )  # fmt: skip


def start_node_cluster() -> NodeCluster:
    missing = missing_requirements()
    if missing:
        pytest.fail(
            "the node tier needs " + ", ".join(missing) + " (.ci/run installs the packages)",
            pytrace=False,
        )
    cluster = NodeCluster(build_binaries())
    cluster.start()
    return cluster


@pytest.fixture(scope="module")
def node_cluster() -> Iterator[NodeCluster]:
    cluster = start_node_cluster()
    print(f"\nreal node up: {json.dumps(cluster.node.timings.steps)}")
    try:
        yield cluster
    finally:
        cluster.stop()
    assert not cluster.node.left, f"the node's teardown left: {cluster.node.left}"


@pytest.fixture(scope="module")
def node_namespace(node_cluster: NodeCluster) -> str:
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    node_cluster.kubectl("create", "namespace", name)
    # Pods need the namespace's default ServiceAccount, which the controller-manager
    # creates a moment later; `kubectl wait` fails at once on an object not yet there.
    wait_for(
        lambda: node_cluster.kubectl(
            "-n", name, "get", "serviceaccount", "default", check=False
        ).returncode == 0,
        "the namespace's default ServiceAccount", timeout=30,
    )  # fmt: skip
    return name


def busybox_pod(
    name: str, command: str, *, labels: dict[str, str] | None = None, **spec: Any
) -> dict[str, Any]:
    """A pod of the local busybox image, on the real node, running ``sh -c command``."""
    container: dict[str, Any] = {
        "name": "main",
        "image": BUSYBOX_IMAGE,
        "imagePullPolicy": "Never",
        "command": ["/bin/sh", "-c", command],
    }
    container.update(spec.pop("container", {}))
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {"app": name}},
        "spec": {
            "nodeSelector": REAL_NODE_SELECTOR,
            "tolerations": [REAL_NODE_TOLERATION],
            "terminationGracePeriodSeconds": 1,
            "containers": [container],
            **spec,
        },
    }


def wait_ready(cluster: LocalCluster, namespace: str, pod: str, timeout: float = 120) -> float:
    """Waits for the pod's Ready condition; returns the seconds it took from now."""
    t0 = time.monotonic()
    cluster.kubectl(
        "-n", namespace, "wait", "--for=condition=Ready", f"pod/{pod}", f"--timeout={timeout}s",
        timeout=timeout + 10,
    )  # fmt: skip
    return time.monotonic() - t0


def pod_json(cluster: NodeCluster, namespace: str, pod: str) -> dict[str, Any]:
    out = cluster.kubectl("-n", namespace, "get", "pod", pod, "-o", "json").stdout
    return dict(json.loads(out))
