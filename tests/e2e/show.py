"""The LiveStream "show" that the product tests (test_product.py, test_live_operations.py)
drive on the real node: the product installed for it, its manifest, its pods, its status,
its encoder, the figures they print and the evidence a failure shows.

Timings are printed (``pytest -s``) as ``FIGURE name value``.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from hack.localcluster import livestreams
from hack.localcluster.controlplane import ClusterError
from hack.localcluster.node import NodeCluster
from hack.localcluster.product import (
    IMAGE_TARS,
    RELEASE,
    SYSTEM_NS,
    Helm,
    build_images,
    ingest_from_host,
    kubectl_report,
    remove_product,
    reported_on_failure,
    sink_objects,
    sink_url,
    wait_ingest_reachable,
    wait_operator,
)
from hack.media.encoder import Publisher
from hack.waiting import wait_for

LS = "show"

FIGURES: dict[str, Any] = {}


def figure(name: str, value: Any) -> None:
    FIGURES[name] = value
    print(f"\nFIGURE {name} {json.dumps(value)}")


# -- the product ----------------------------------------------------------------------


@contextlib.contextmanager
def installed(
    cluster: NodeCluster, ns: str, sinks: tuple[str, ...], values: dict[str, Any]
) -> Iterator[Helm]:
    """Images imported into the node, the chart installed with ``values`` (operator pod
    on the real node, webhook served from it), the sink pods with their Services Ready;
    on the way out the LiveStreams of ``ns`` and the release removed."""
    build_images()
    t0 = time.monotonic()
    for tar in IMAGE_TARS:
        cluster.node.import_image(tar)
    figure("image_import_s", round(time.monotonic() - t0, 1))
    helm = Helm(cluster, cluster.workdir / "helm")
    t0 = time.monotonic()
    helm.install(values)
    objs = [o for s in sinks for o in sink_objects(s)]
    cluster.kubectl(
        "-n", ns, "apply", "-f", "-",
        input=json.dumps({"apiVersion": "v1", "kind": "List", "items": objs}),
    )  # fmt: skip
    try:
        wait_operator(cluster)
        figure("helm_install_to_operator_ready_s", round(time.monotonic() - t0, 1))
        for s in sinks:
            cluster.kubectl("-n", ns, "wait", "--for=condition=Ready", f"pod/{s}",
                            "--timeout=120s", timeout=130)  # fmt: skip
        yield helm
    except BaseException:
        print(diagnostics(cluster, ns))
        raise
    finally:
        remove_product(cluster, helm, ns)


def evidence(ns: str) -> list[tuple[str, ...]]:
    return [
        ("get", "pods", "-A", "-o", "wide"),
        ("-n", SYSTEM_NS, "logs", f"deployment/{RELEASE}", "--tail=60"),
        ("-n", ns, "get", "livestream", LS, "-o", "yaml"),
        ("-n", ns, "get", "events", "--sort-by=.lastTimestamp"),
        ("-n", ns, "logs", f"deployment/{LS}-ingest", "--tail=40"),
        ("-n", ns, "get", "svc,endpointslices", "-o", "wide"),
    ]


def diagnostics(cluster: NodeCluster, ns: str) -> str:
    return kubectl_report(cluster, evidence(ns))


def diagnosed(cluster: NodeCluster, ns: str) -> contextlib.AbstractContextManager[None]:
    # kube-router's log: whether the NetworkPolicies let the operator reach the agents
    return reported_on_failure(cluster, evidence(ns), [cluster.node.log_dir / "kube-router.log"])


# -- kubectl ----------------------------------------------------------------------------


def kubectl_bytes(cluster: NodeCluster, *args: str, timeout: float = 60) -> bytes:
    proc = subprocess.run(
        [str(cluster.kubectl_path), f"--kubeconfig={cluster.kubeconfig}", *args],
        capture_output=True, timeout=timeout, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise ClusterError(f"kubectl {' '.join(args)}: {proc.stderr.decode(errors='replace')}")
    return proc.stdout


def get_json(cluster: NodeCluster, ns: str | None, *what: str) -> dict[str, Any]:
    nsargs = ["-n", ns] if ns else []
    return dict(json.loads(cluster.kubectl(*nsargs, "get", *what, "-o", "json").stdout))


def apply(cluster: NodeCluster, ns: str, doc: dict[str, Any], check: bool = True) -> Any:
    return cluster.kubectl("-n", ns, "apply", "-f", "-", input=json.dumps(doc), check=check)


# -- the LiveStream -------------------------------------------------------------------


def livestream(ns: str, dests: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "restream.dev/v1alpha1",
        "kind": "LiveStream",
        "metadata": {"name": LS, "namespace": ns},
        "spec": {"restreams": dests},
    }


def dest(n: int, sink: str, ns: str, enabled: bool = True) -> dict[str, Any]:
    return {
        "name": f"dest-{n}",
        "serverUrl": sink_url(sink, ns),
        "streamKey": f"key{n}",
        "enabled": enabled,
    }


def fetch_recording(cluster: NodeCluster, ns: str, sink: str, name: str, dest: Path) -> Path:
    path = dest / f"{sink}-{name}"
    path.write_bytes(
        kubectl_bytes(cluster, "-n", ns, "exec", sink, "--", "cat", f"/tmp/rec/{name}")
    )
    return path


def max_gap(times: list[float]) -> float:
    return max((b - a for a, b in itertools.pairwise(times)), default=0.0)


# -- its status -----------------------------------------------------------------------


def status(cluster: NodeCluster, ns: str) -> dict[str, Any]:
    return livestreams.status(cluster, ns, LS)


def restream_states(st: dict[str, Any]) -> dict[str, str]:
    return {r["name"]: r.get("state", "") for r in st.get("restreams") or []}


def wait_status(
    cluster: NodeCluster, ns: str, ok: Callable[[dict[str, Any]], bool], what: str, timeout: float
) -> dict[str, Any]:
    last: dict[str, Any] = {}

    def check() -> dict[str, Any] | None:
        nonlocal last
        last = status(cluster, ns)
        return last if ok(last) else None

    try:
        found = wait_for(check, what, timeout=timeout, every=0.25)
    except Exception as e:
        raise AssertionError(f"{what}: last status {json.dumps(last)}") from e
    assert found is not None
    return found


def all_live(names: list[str]) -> Callable[[dict[str, Any]], bool]:
    def ok(st: dict[str, Any]) -> bool:
        states = restream_states(st)
        return bool(st.get("broadcasting")) and all(states.get(n) == "Live" for n in names)

    return ok


# -- its pods, and the operator's -----------------------------------------------------


def ls_pods(cluster: NodeCluster, ns: str) -> list[dict[str, Any]]:
    return [
        p
        for p in get_json(cluster, ns, "pods")["items"]
        if p["metadata"]["name"].startswith(f"{LS}-") and not p["metadata"].get("deletionTimestamp")
    ]


def relay_pods(cluster: NodeCluster, ns: str) -> dict[str, dict[str, Any]]:
    """Restream name -> its relay pod (the newest non-terminating one)."""
    pods = get_json(cluster, ns, "pods")["items"]
    deploys = get_json(cluster, ns, "deployments")["items"]
    by_prefix = {}
    for d in deploys:
        ann = d["metadata"].get("annotations") or {}
        names = [v for k, v in ann.items() if k.endswith("restream-name")]
        if d["metadata"]["name"].startswith(f"{LS}-relay-") and names:
            by_prefix[d["metadata"]["name"] + "-"] = names[0]
    out: dict[str, dict[str, Any]] = {}
    for p in pods:
        if p["metadata"].get("deletionTimestamp"):
            continue
        for prefix, rname in by_prefix.items():
            if p["metadata"]["name"].startswith(prefix):
                prev = out.get(rname)
                if prev is None or (
                    p["metadata"]["creationTimestamp"] > prev["metadata"]["creationTimestamp"]
                ):
                    out[rname] = p
    return out


def ready(pod: dict[str, Any]) -> bool:
    return any(
        c["type"] == "Ready" and c["status"] == "True"
        for c in pod.get("status", {}).get("conditions") or []
    )


def wait_all_ready(cluster: NodeCluster, ns: str, relays: list[str], timeout: float = 120) -> float:
    """Until every pod of the LiveStream is Ready (relays are Ready while Idle too),
    every relay's agent answers (status Idle or Live) and the ingest Service accepts
    connections: ready to publish to."""
    t0 = time.monotonic()

    def ok() -> bool:
        pods = ls_pods(cluster, ns)
        ingest = [p for p in pods if p["metadata"]["name"].startswith(f"{LS}-ingest-")]
        relay = [p for p in pods if p["metadata"]["name"].startswith(f"{LS}-relay-")]
        if len(ingest) != 1 or not ready(ingest[0]) or len(relay) != len(relays):
            return False
        if not all(ready(p) for p in relay):
            return False
        states = restream_states(status(cluster, ns))
        return all(states.get(n) in ("Idle", "Live") for n in relays)

    wait_for(ok, f"ingest and {len(relays)} relay pods Ready, relays Idle", timeout=timeout,
             every=0.2)  # fmt: skip
    wait_ingest_reachable(cluster, ns, LS)
    return time.monotonic() - t0


def operator_pod(cluster: NodeCluster) -> dict[str, Any] | None:
    pods = [p for p in get_json(cluster, SYSTEM_NS, "pods", "-l",
                                f"app.kubernetes.io/instance={RELEASE}")["items"]
            if not p["metadata"].get("deletionTimestamp")]  # fmt: skip
    return pods[0] if len(pods) == 1 else None


# -- its encoder ----------------------------------------------------------------------


def publisher(cluster: NodeCluster, ns: str, seconds: float | None) -> Publisher:
    """ffmpeg on the host publishing a test pattern to the ingest Service's ClusterIP."""
    return Publisher(*ingest_from_host(cluster, ns, LS), seconds)


@contextlib.contextmanager
def publishing(cluster: NodeCluster, ns: str, seconds: float | None) -> Iterator[Publisher]:
    pub = publisher(cluster, ns, seconds)
    try:
        yield pub
    finally:
        pub.stop()
