"""Validating-webhook latency (not a test; prints figures).

Against the local control plane and the operator serving its webhook on loopback:
1. direct: AdmissionReview POSTs straight to the webhook (the apiserver out of the
   loop), one at a time and N concurrent for D seconds, each three ways side by side:
   the same LiveStream with inline keys (it names no Secret: no SubjectAccessReview),
   naming two Secrets by one requester (its access reviews cached), and by a new
   requester every request (a SubjectAccessReview per Secret named, the worst case);
2. through the apiserver: server-side dry-run creates of a LiveStream (what
   `kubectl apply --dry-run=server` sends), N concurrent for D seconds;
3. `kubectl apply --dry-run=server` itself, one at a time (process start included).

    .venv/bin/python -m bench.admission [--concurrency 50] [--seconds 30]
    .venv/bin/python -m bench.admission --smoke     # seconds: that it runs (make test)
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import ssl
import statistics
import subprocess
import sys
import time
import uuid
from typing import Any

import aiohttp

from bench.common import cluster_with_crds, parse_args
from hack.localcluster.controlplane import LocalCluster, free_port
from hack.localcluster.operator_process import (
    OperatorProcess,
    remove_webhook_configuration,
    wait_for_webhooks,
)

SMOKE = {
    "concurrency": 4,
    "seconds": 1.0,
    "sequential_seconds": 1.0,
    "warmup_seconds": 0.5,
    "kubectl_runs": 2,
}
LIVESTREAM: dict[str, Any] = {
    "apiVersion": "restream.dev/v1alpha1",
    "kind": "LiveStream",
    "metadata": {"name": "bench", "namespace": "bench"},
    "spec": {
        "restreams": [
            {
                "name": "Youtube",
                "serverUrl": "rtmps://a.rtmps.youtube.com:443/live2",
                "streamKeySecretRef": {"name": "yt", "key": "key"},
            },
            {
                "name": "Twitch",
                "serverUrl": "rtmps://live.twitch.tv/app",
                "streamKeySecretRef": {"name": "tw", "key": "key"},
            },
        ]
    },
}


# Who sends the reviews: None (the inline-key twin, which names no Secret: no access
# review), one user, or a new user each time. Every bench user may read the two Secrets
# (their group is bound to that).
REQUESTERS = {"no access review": None, "access review cached": "bench", "access review each": ""}
BENCH_GROUP = "bench-users"


INLINE: dict[str, Any] = {
    **LIVESTREAM,
    "spec": {
        "restreams": [
            {"name": r["name"], "serverUrl": r["serverUrl"], "streamKey": "bench-key"}
            for r in LIVESTREAM["spec"]["restreams"]
        ]
    },
}


def review_request(user: str | None) -> dict[str, Any]:
    review: dict[str, Any] = {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": str(uuid.uuid4()),
            "kind": {"group": "restream.dev", "version": "v1alpha1", "kind": "LiveStream"},
            "resource": {"group": "restream.dev", "version": "v1alpha1", "resource": "livestreams"},
            "requestKind": {"group": "restream.dev", "version": "v1alpha1", "kind": "LiveStream"},
            "requestResource": {
                "group": "restream.dev",
                "version": "v1alpha1",
                "resource": "livestreams",
            },
            "name": "bench",
            "namespace": "bench",
            "operation": "CREATE",
            "object": INLINE if user is None else LIVESTREAM,
            "oldObject": None,
            "dryRun": False,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
        },
    }
    review["request"]["userInfo"] = {
        "username": f"bench-{uuid.uuid4().hex[:12]}" if user == "" else "bench",
        "groups": ["system:authenticated", BENCH_GROUP],
    }
    return review


def allow_bench_users(cluster: LocalCluster, namespace: str) -> None:
    cluster.kubectl(
        "create",
        "role",
        "bench-secrets",
        "-n",
        namespace,
        "--verb=get",
        "--resource=secrets",
        "--resource-name=yt",
        "--resource-name=tw",
    )
    cluster.kubectl(
        "create",
        "rolebinding",
        "bench-secrets",
        "-n",
        namespace,
        "--role=bench-secrets",
        f"--group={BENCH_GROUP}",
    )


async def load(
    session: aiohttp.ClientSession,
    url: str,
    body: dict[str, Any] | None,
    concurrency: int,
    seconds: float,
    ok: int,
    user: str | None = None,
) -> list[float]:
    latencies: list[float] = []
    errors = 0
    deadline = time.monotonic() + seconds

    async def worker() -> None:
        nonlocal errors
        while time.monotonic() < deadline:
            payload = review_request(user) if body is None else body
            started = time.perf_counter()
            async with session.post(url, json=payload) as resp:
                await resp.read()
                if resp.status != ok or (body is None and not _allowed(await resp.json())):
                    errors += 1
            latencies.append((time.perf_counter() - started) * 1000)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    if errors:
        print(f"  ({errors} unexpected responses)")
    return latencies


def _allowed(response: dict[str, Any]) -> bool:
    return bool((response.get("response") or {}).get("allowed"))


def summary(name: str, ms: list[float], seconds: float) -> None:
    ms = sorted(ms)
    p50 = statistics.median(ms)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    rate = len(ms) / seconds
    print(f"{name:<44} n={len(ms):>6} {rate:6.0f}/s  p50 {p50:7.2f} ms  p99 {p99:7.2f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=30, help="each concurrent load")
    parser.add_argument("--sequential-seconds", type=float, default=5, help="one at a time")
    parser.add_argument("--warmup-seconds", type=float, default=3)
    parser.add_argument("--kubectl-runs", type=int, default=20)
    args = parse_args(parser, SMOKE)

    with cluster_with_crds() as (cluster, tmp):
        port = free_port()
        op = OperatorProcess(cluster.kubeconfig, tmp / "operator.log")
        op.start("--webhook", f"local:127.0.0.1:{port}")
        try:
            allow_bench_users(cluster, "bench")
            wait_for_webhooks(cluster)
            config = json.loads(
                cluster.kubectl(
                    "get", "validatingwebhookconfiguration", "restream-operator", "-o", "json"
                ).stdout
            )
            ca = base64.b64decode(config["webhooks"][0]["clientConfig"]["caBundle"])
            hook = ssl.create_default_context(cadata=ca.decode())
            api = ssl.create_default_context(cafile=str(cluster.ca.pair.cert))
            api.load_cert_chain(str(cluster.admin.cert), str(cluster.admin.key))

            async def run() -> None:
                conn = aiohttp.TCPConnector(ssl=hook, limit=args.concurrency)
                async with aiohttp.ClientSession(connector=conn) as session:
                    url = f"https://127.0.0.1:{port}/validate"
                    await load(session, url, None, 5, args.warmup_seconds, 200, "bench")
                    for how, user in REQUESTERS.items():
                        ms = await load(session, url, None, 1, args.sequential_seconds, 200, user)
                        summary(
                            f"webhook direct, one at a time, {how}", ms, args.sequential_seconds
                        )
                    for how, user in REQUESTERS.items():
                        n = args.concurrency
                        ms = await load(session, url, None, n, args.seconds, 200, user)
                        summary(f"webhook direct, {n} concurrent, {how}", ms, args.seconds)
                conn = aiohttp.TCPConnector(ssl=api, limit=args.concurrency)
                async with aiohttp.ClientSession(connector=conn) as session:
                    path = "/apis/restream.dev/v1alpha1/namespaces/bench/livestreams"
                    url = f"{cluster.server}{path}?dryRun=All"
                    ms = await load(session, url, LIVESTREAM, args.concurrency, args.seconds, 201)
                    summary(
                        f"apiserver dry-run create, {args.concurrency} concurrent", ms, args.seconds
                    )

            asyncio.run(run())

            manifest = json.dumps(LIVESTREAM)
            runs = []
            for _ in range(args.kubectl_runs):
                started = time.perf_counter()
                subprocess.run(
                    [
                        str(cluster.kubectl_path),
                        f"--kubeconfig={cluster.kubeconfig}",
                        "apply",
                        "--dry-run=server",
                        "-f",
                        "-",
                    ],
                    input=manifest,
                    text=True,
                    check=True,
                    capture_output=True,
                )
                runs.append((time.perf_counter() - started) * 1000)
            summary("kubectl apply --dry-run=server, sequential", runs, sum(runs) / 1000)
        finally:
            op.stop()
            remove_webhook_configuration(cluster)
    return 0


if __name__ == "__main__":
    sys.exit(main())
