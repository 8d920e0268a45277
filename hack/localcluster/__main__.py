"""`python -m hack.localcluster up|down|build`: the local cluster for people.

`up` leaves the cluster running, writes its admin kubeconfig to .cluster/kubeconfig,
links the pinned kubectl at .cluster/bin/kubectl and prints the export line. With
`--node auto` (what `make demo` asks for) it adds the real node when this machine can
run one (hack/localcluster/node.py: root and the node's Debian packages), `--node on`
insists on it, `--node off` (the default) keeps kwok's simulated node only.
`down` stops every process it started, by PID, tears the real node down and removes
its files.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from .controlplane import ClusterError, LocalCluster, build_binaries, stop_pid
from .node import NodeCluster, missing_requirements, stop_detached

CHECKOUT = Path(__file__).resolve().parents[2]
# RESTREAM_CLUSTER_DIR: for the tests of `up` and `down` themselves
STATE_DIR = Path(os.environ.get("RESTREAM_CLUSTER_DIR") or CHECKOUT / ".cluster")
STATE = STATE_DIR / "state.json"


def attach(state_dir: Path = STATE_DIR) -> tuple[LocalCluster, dict[str, Any]]:
    """The cluster `up` left running, to talk to (not to start or stop: see `down`)."""
    state = json.loads((state_dir / STATE.name).read_text())
    cluster = LocalCluster(Path(state["bin_dir"]), Path(state["workdir"]))
    cluster.server = state["server"]
    return cluster, state


def up(node: str) -> int:
    if STATE.exists():
        print(f"a cluster is already up (state in {STATE}); run `make cluster-down` first")
        return 1
    missing = missing_requirements() if node != "off" else []
    if node == "on" and missing:
        print("a real node needs " + ", ".join(missing) + " (bash hack/packages.sh node)")
        return 1
    real = node != "off" and not missing
    bin_dir = build_binaries()
    started = time.monotonic()
    cluster = NodeCluster(bin_dir, detached=True) if real else LocalCluster(bin_dir, detached=True)
    try:
        cluster.start()
    except ClusterError as e:
        print(f"the local cluster did not start: {e}", file=sys.stderr)
        return 1
    STATE_DIR.mkdir(exist_ok=True)
    (STATE_DIR / "bin").mkdir(exist_ok=True)
    kubeconfig = STATE_DIR / "kubeconfig"
    shutil.copy(cluster.kubeconfig, kubeconfig)
    link = STATE_DIR / "bin" / "kubectl"
    link.unlink(missing_ok=True)
    link.symlink_to(cluster.kubectl_path)
    state: dict[str, Any] = cluster.state()
    if isinstance(cluster, NodeCluster):
        state["node"] = cluster.node.name  # the rest is in its NodeState
    else:
        state["node"] = None
        lacks = "this machine lacks " + ", ".join(missing)
        state["why_simulated"] = (
            "the cluster was started without one: `make cluster-down`, then `make demo`"
            if node == "off"
            else lacks
        )
    STATE.write_text(json.dumps(state, indent=2))
    print(f"local cluster up in {time.monotonic() - started:.1f}s at {cluster.server}")
    if isinstance(cluster, NodeCluster):
        print(f"real node {cluster.node.name}: pods that tolerate restream.dev/real-node run in")
        print("containerd on this machine (pod network 10.244.0.0/24, reachable from here)")
    else:
        print("(nodes are simulated by kwok: pods are scheduled and report Ready, nothing runs;")
        print(" NODE=auto adds a real node)" if node == "off" else f" {lacks})")
    print(f"export KUBECONFIG={kubeconfig} PATH={link.parent}:$PATH")
    return 0


def down() -> int:
    if not STATE.exists():
        print("no cluster is up")
        return 0
    cluster, state = attach()
    operator_pid = STATE_DIR / "operator.pid"  # `make demo` starts one on kwok's node
    if operator_pid.exists():
        stop_pid(int(operator_pid.read_text()), sys.executable)
    left: list[str] = []
    if state.get("node"):
        left = stop_detached(cluster)  # its pods go first, while the API still answers
    for component in reversed(state["components"]):
        if component["pid"]:
            stop_pid(int(component["pid"]), component["binary"])
    shutil.rmtree(state["workdir"], ignore_errors=True)
    shutil.rmtree(STATE_DIR, ignore_errors=True)
    if left:
        print("the real node's teardown left: " + "; ".join(left), file=sys.stderr)
        return 1
    print("local cluster stopped" + (", real node torn down" if state.get("node") else ""))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m hack.localcluster",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=["up", "down", "build"])
    parser.add_argument(
        "--node",
        choices=["auto", "on", "off"],
        default="off",
        help="add a real node (containerd + kubelet) to `up`",
    )
    args = parser.parse_args()
    if args.command == "build":
        print(build_binaries())
        return 0
    return up(args.node) if args.command == "up" else down()


if __name__ == "__main__":
    sys.exit(main())
