"""What the benchmarks share: the smoke switch, and a local cluster with the CRD."""

from __future__ import annotations

import argparse
import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hack.localcluster.controlplane import LocalCluster, build_binaries

CHECKOUT = Path(__file__).resolve().parents[1]


def parse_args(parser: argparse.ArgumentParser, smoke: dict[str, Any]) -> argparse.Namespace:
    """The arguments; with ``--smoke``, the ``smoke`` values are the defaults instead
    (flags given explicitly still win)."""
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="a few seconds on tiny counts, with the same real processes: that it still "
        "runs and prints its figures (make test runs this; the figures mean little)",
    )
    if parser.parse_known_args()[0].smoke:
        parser.set_defaults(**smoke)
    return parser.parse_args()


@contextlib.contextmanager
def cluster_with_crds(namespace: str = "bench") -> Iterator[tuple[LocalCluster, Path]]:
    """A fresh local control plane with the LiveStream CRD, and a temp dir for logs."""
    with LocalCluster(build_binaries()) as cluster, tempfile.TemporaryDirectory() as tmp:
        cluster.kubectl("apply", "--server-side", "-f", str(CHECKOUT / "crds"))
        cluster.wait_established("livestreams.restream.dev")
        cluster.kubectl("create", "namespace", namespace)
        yield cluster, Path(tmp)
