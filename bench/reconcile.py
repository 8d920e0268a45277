"""Reconcile benchmark against the local control plane (not a test; prints figures).

Creates N LiveStreams with D destinations each, measures the time until every one has
all its children and a status, the operator's peak RSS, and then the status writes per
minute while nothing changes.

    .venv/bin/python -m bench.reconcile [--count 200] [--destinations 3] [--idle 60]
    .venv/bin/python -m bench.reconcile --smoke     # seconds: that it runs (make test)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from bench.common import cluster_with_crds, parse_args
from hack.localcluster.controlplane import LocalCluster
from hack.localcluster.operator_process import OperatorProcess

SMOKE = {"count": 3, "destinations": 2, "idle": 3.0, "settle": 2.0, "poll": 0.5}


def livestreams(count: int, destinations: int) -> str:
    docs = []
    for i in range(count):
        docs.append(
            {
                "apiVersion": "restream.dev/v1alpha1",
                "kind": "LiveStream",
                "metadata": {"name": f"bench-{i:04d}", "namespace": "bench"},
                "spec": {
                    "restreams": [
                        {
                            "name": f"Destination {d}",
                            "serverUrl": f"rtmp://d{d}.example.com/app",
                            "streamKey": f"key-{i}-{d}",
                        }
                        for d in range(destinations)
                    ]
                },
            }
        )
    return "\n---\n".join(json.dumps(d) for d in docs)


def count(cluster: LocalCluster, what: str) -> int:
    out = cluster.kubectl("get", what, "-n", "bench", "-o", "name", timeout=120).stdout
    return len(out.split())


def ready(cluster: LocalCluster) -> int:
    """LiveStreams whose status says Ready=True (children exist, pods ready)."""
    out = cluster.kubectl(
        "get",
        "livestreams",
        "-n",
        "bench",
        "-o",
        'jsonpath={range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\\n"}{end}',
        timeout=120,
    ).stdout
    return sum(1 for line in out.splitlines() if line.strip() == "True")


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--destinations", type=int, default=3)
    parser.add_argument("--idle", type=float, default=60, help="seconds counting idle writes")
    parser.add_argument("--settle", type=float, default=15, help="seconds before counting")
    parser.add_argument("--poll", type=float, default=2, help="seconds between checks")
    args = parse_args(parser, SMOKE)

    with cluster_with_crds() as (cluster, tmp):
        op = OperatorProcess(
            cluster.kubeconfig, tmp / "operator.log", env={"RESTREAM_AGENT_POLL_SECONDS": "5"}
        )
        op.start()
        try:
            assert op.process is not None
            expected_deployments = args.count * (1 + args.destinations)
            started = time.monotonic()
            cluster.kubectl(
                "apply",
                "--server-side",
                "-f",
                "-",
                input=livestreams(args.count, args.destinations),
                timeout=600,
            )
            applied = time.monotonic() - started
            while True:
                deployments = count(cluster, "deployments")
                statuses = ready(cluster)
                if deployments >= expected_deployments and statuses >= args.count:
                    break
                if time.monotonic() - started > 1800:
                    print(f"gave up: {deployments}/{expected_deployments} deployments")
                    return 1
                time.sleep(args.poll)
            converged = time.monotonic() - started
            rss = peak_rss_mib(op.process.pid)

            # Settle, then count every write to any LiveStream while nothing changes.
            time.sleep(args.settle)
            watch = subprocess.Popen(
                [
                    str(cluster.kubectl_path),
                    f"--kubeconfig={cluster.kubeconfig}",
                    "get",
                    "livestreams",
                    "-n",
                    "bench",
                    "--watch-only",
                    "-o",
                    "name",
                ],
                stdout=subprocess.PIPE,
                text=True,
            )
            time.sleep(args.idle)
            watch.terminate()
            out, _ = watch.communicate(timeout=10)
            writes = len(out.split())
            peak = peak_rss_mib(op.process.pid)
        finally:
            op.stop()

    print(f"livestreams x destinations      {args.count} x {args.destinations}")
    print(f"kubectl apply returned after    {applied:.1f} s")
    print(f"all children, all Ready after   {converged:.1f} s")
    print(f"operator peak RSS (converged)   {rss:.0f} MiB")
    print(f"operator peak RSS (after idle)  {peak:.0f} MiB")
    print(f"status writes while idle        {writes * 60 / args.idle:.1f} per minute")
    return 0


if __name__ == "__main__":
    sys.exit(main())
