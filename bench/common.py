"""What the control-plane benchmarks share: a local cluster with the CRD and a namespace."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

from hack.localcluster.controlplane import LocalCluster, build_binaries

CHECKOUT = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def cluster_with_crds(namespace: str = "bench") -> Iterator[tuple[LocalCluster, Path]]:
    """A fresh local control plane with the LiveStream CRD, and a temp dir for logs."""
    with LocalCluster(build_binaries()) as cluster, tempfile.TemporaryDirectory() as tmp:
        cluster.kubectl("apply", "--server-side", "-f", str(CHECKOUT / "crds"))
        cluster.kubectl("wait", "--for=condition=Established", "crd/livestreams.restream.dev")
        cluster.kubectl("create", "namespace", namespace)
        yield cluster, Path(tmp)
