"""`python -m tests.cluster up|down|build`: the local control plane for people.

`up` leaves the cluster running, writes its admin kubeconfig to .cluster/kubeconfig,
links the pinned kubectl at .cluster/bin/kubectl and prints the export line;
`down` stops every process it started, by PID, and removes its files.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from .controlplane import LocalCluster, build_binaries, stop_pid

CHECKOUT = Path(__file__).resolve().parents[2]
STATE_DIR = CHECKOUT / ".cluster"
STATE = STATE_DIR / "state.json"


def up() -> int:
    if STATE.exists():
        print(f"a cluster is already up (state in {STATE}); run `make cluster-down` first")
        return 1
    bin_dir = build_binaries()
    started = time.monotonic()
    cluster = LocalCluster(bin_dir, detached=True)
    cluster.start()
    STATE_DIR.mkdir(exist_ok=True)
    (STATE_DIR / "bin").mkdir(exist_ok=True)
    kubeconfig = STATE_DIR / "kubeconfig"
    shutil.copy(cluster.kubeconfig, kubeconfig)
    link = STATE_DIR / "bin" / "kubectl"
    link.unlink(missing_ok=True)
    link.symlink_to(cluster.kubectl_path)
    STATE.write_text(json.dumps(cluster.state(), indent=2))
    print(f"local control plane up in {time.monotonic() - started:.1f}s at {cluster.server}")
    print("(nodes are simulated by kwok: pods are scheduled and report Ready, nothing runs)")
    print(f"export KUBECONFIG={kubeconfig} PATH={link.parent}:$PATH")
    return 0


def down() -> int:
    if not STATE.exists():
        print("no cluster is up")
        return 0
    state = json.loads(STATE.read_text())
    operator_pid = STATE_DIR / "operator.pid"  # `make demo` starts one
    if operator_pid.exists():
        stop_pid(int(operator_pid.read_text()), sys.executable)
    for component in reversed(state["components"]):
        if component["pid"]:
            stop_pid(int(component["pid"]), component["binary"])
    shutil.rmtree(state["workdir"], ignore_errors=True)
    shutil.rmtree(STATE_DIR, ignore_errors=True)
    print("local control plane stopped")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.cluster", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "build"])
    args = parser.parse_args()
    if args.command == "build":
        print(build_binaries())
        return 0
    return up() if args.command == "up" else down()


if __name__ == "__main__":
    sys.exit(main())
