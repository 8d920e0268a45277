"""`make demo`: the local cluster, the operator and a LiveStream, as a user would see them.

On the real node (`python -m hack.localcluster up --node auto` made one: root and the node's
Debian packages present): the project's images are built and imported, the operator is
installed with the Helm chart and runs as a pod, two nginx-rtmp sink pods stand in for
YouTube and Twitch, and the LiveStream `launch` gets real ingest and relay pods, taking
RTMP, RTMPS (its certificate in a Secret, from a CA of the demo's) and SRT. A test
pattern is then published from the host over RTMPS for DEMO_PUBLISH_SECONDS (default 15;
0 skips it), verifying the certificate, and the demo shows the status and the sinks'
recordings as they happen; while it is live, the on-air PodDisruptionBudget, and a change
that needs the ingest pod replaced (HLS on) waiting for the broadcast to end instead of
cutting it. Everything stays up for you to publish with OBS or ffmpeg (`make publish`);
`make cluster-down` stops it all.

Without a real node (kwok's simulated one): the operator runs as a local process and the
example LiveStream is applied; it says what is simulated.

`python -m hack.demo publish [SECONDS]` is `make publish`: the test pattern to the demo's
ingest, the key read from its Secret and handed to ffmpeg through a pipe.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from hack.localcluster import livestreams
from hack.localcluster.__main__ import STATE, STATE_DIR, attach
from hack.localcluster.controlplane import ClusterError, LocalCluster, free_port
from hack.localcluster.node import CLUSTER_DNS, NodeState, import_image
from hack.localcluster.operator_process import OperatorProcess, wait_for_webhooks
from hack.localcluster.pki import CertificateAuthority
from hack.localcluster.product import (
    IMAGE_TARS,
    Helm,
    build_images,
    chart_values,
    ingest_from_host,
    sink_files,
    sink_objects,
    sink_tracks,
    sink_url,
    tls_secret,
    wait_ingest_reachable,
    wait_operator,
    wait_service_reachable,
    with_cluster_dns,
)
from hack.media.encoder import FPS, Publisher
from hack.waiting import wait_for
from restream_operator.agent import contract

CHECKOUT = Path(__file__).resolve().parents[1]
KUBECTL = STATE_DIR / "bin" / "kubectl"
KUBECONFIG = STATE_DIR / "kubeconfig"
PIDFILE = STATE_DIR / "operator.pid"
LOG = STATE_DIR / "operator.log"
MANIFEST = STATE_DIR / "demo.yaml"  # what the real-node demo applied, to read or edit
LS = "launch"
NS = "default"
TLS_SECRET = f"{LS}-ingest-tls"
INGEST_HOST = f"{LS}-ingest.{NS}.svc.cluster.local"
DEMO_CA = STATE_DIR / "demo-ca" / "ca.crt"  # the CA that issued the ingest's certificate
SINKS = {"Youtube": "sink-youtube", "Twitch": "sink-twitch"}  # restream -> its sink pod


def shown(path: Path) -> Path:
    return path.relative_to(CHECKOUT) if path.is_relative_to(CHECKOUT) else path


def say(text: str = "") -> None:
    print(text, flush=True)


def show(cluster: LocalCluster, *args: str) -> None:
    out = cluster.kubectl(*args, check=False)
    say(f"$ kubectl {' '.join(args)}")
    say((out.stdout + out.stderr).rstrip())
    say()


def footer() -> None:
    say(f"export KUBECONFIG={KUBECONFIG} PATH={KUBECTL.parent}:$PATH")
    say("kubectl get livestreams -w      # watch it; `make cluster-down` stops everything")
    say(".venv/bin/restream-operator console   # or in a browser: open the URL it prints")


# -- on the real node ----------------------------------------------------------------------


def ingest_certificate() -> dict[str, Any]:
    """The ingest's RTMPS certificate as cert-manager would store it (a kubernetes.io/tls
    Secret), issued for the ingest Service's name by a CA of the demo's own, whose
    certificate (DEMO_CA) encoders are given to trust."""
    DEMO_CA.parent.mkdir(parents=True, exist_ok=True)
    ca = CertificateAuthority(DEMO_CA.parent)
    pair = ca.issue("ingest", INGEST_HOST, dns_names=(INGEST_HOST,), server=True)
    return tls_secret(TLS_SECRET, pair)


def demo_objects() -> list[dict[str, Any]]:
    """Two sinks, their keys in a Secret, the ingest's certificate, and the LiveStream
    restreaming to both, taking RTMP, RTMPS and SRT."""
    objects = [o for sink in SINKS.values() for o in sink_objects(sink)]
    objects.append(ingest_certificate())
    objects.append(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "sink-keys"},
            "stringData": {name.lower(): f"demo-{name.lower()}" for name in SINKS},
        }
    )
    objects.append(
        {
            "apiVersion": "restream.dev/v1alpha1",
            "kind": "LiveStream",
            "metadata": {"name": LS},
            "spec": {
                "ingest": {"tls": {"secretRef": {"name": TLS_SECRET}}, "srt": {}},
                "restreams": [
                    {
                        "name": name,
                        "serverUrl": sink_url(sink, NS),
                        "streamKeySecretRef": {"name": "sink-keys", "key": name.lower()},
                    }
                    for name, sink in SINKS.items()
                ],
            },
        }
    )
    return objects


def install(cluster: LocalCluster, containerd: str) -> None:
    say("Building the images (make images: about 2 min the first time, then cached)...")
    build_images()
    for tar in IMAGE_TARS:
        import_image(containerd, tar)
    say("Images imported into the node's containerd (namespace k8s.io).")
    say("helm upgrade --install restream-operator charts/restream-operator"
        " (values: .cluster/helm/values.json)")  # fmt: skip
    Helm(cluster, STATE_DIR / "helm").install(chart_values(agent_poll_seconds=2))
    wait_operator(cluster)
    say("The operator runs as a pod on the node and serves its admission webhook from it.")


def apply_demo(cluster: LocalCluster) -> None:
    MANIFEST.write_text(
        "# Applied by `make demo`: two nginx-rtmp sinks standing in for YouTube and Twitch,\n"
        "# their keys, the ingest's certificate, and the LiveStream that restreams to both.\n"
        + json.dumps({"apiVersion": "v1", "kind": "List", "items": demo_objects()}, indent=2)
        + "\n"
    )
    # The operator registers its webhook configurations as it starts: until its pod
    # answers them, an apply can be refused. Try again for a while.
    t0 = time.monotonic()
    deadline = t0 + 60
    while (out := cluster.kubectl("apply", "-n", NS, "-f", str(MANIFEST), check=False)).returncode:
        if time.monotonic() > deadline:
            raise SystemExit(f"demo: kubectl apply -f {MANIFEST} failed: {out.stderr.strip()}")
        time.sleep(1)
    say(f"$ kubectl apply -f {shown(MANIFEST)}")
    say(out.stdout.strip())
    for sink in SINKS.values():
        cluster.kubectl("-n", NS, "wait", "--for=condition=Ready", f"pod/{sink}",
                        "--timeout=120s", timeout=130)  # fmt: skip
    wait_for(lambda: livestreams.ready(cluster, NS, LS), "the LiveStream to be Ready", timeout=120)
    cluster.kubectl("-n", NS, "wait", "--for=condition=Ready", "pod", "-l",
                    f"restream.dev/livestream={LS}", "--timeout=120s", timeout=130)  # fmt: skip
    wait_ingest_reachable(cluster, NS, LS)
    say(f"LiveStream {LS} and its pods Ready {time.monotonic() - t0:.1f}s after the apply.")
    say()


def update_pending(cluster: LocalCluster) -> dict[str, Any]:
    st = livestreams.status(cluster, NS, LS)
    return next((c for c in st.get("conditions") or [] if c["type"] == "UpdatePending"), {})


def change_while_live(cluster: LocalCluster) -> None:
    """Operating while live: the on-air budget, and a change that needs the ingest pod
    replaced (HLS on), which waits for the broadcast to end rather than cut it."""
    wait_for(lambda: cluster.kubectl("-n", NS, "get", "pdb", f"{LS}-on-air", check=False)
             .returncode == 0, "the on-air PodDisruptionBudget", timeout=15)  # fmt: skip
    show(cluster, "-n", NS, "get", "pdb")
    patch = json.dumps({"spec": {"playback": {"hls": True}}})
    say(f"$ kubectl patch livestream {LS} --type=merge -p '{patch}'   # replaces the ingest pod")
    cluster.kubectl("-n", NS, "patch", "livestream", LS, "--type=merge", "-p", patch)
    wait_for(lambda: update_pending(cluster).get("status") == "True", "UpdatePending", timeout=15)
    cond = update_pending(cluster)
    say(f"  UpdatePending={cond['status']} ({cond['reason']}): {cond['message']}")


def after_broadcast(cluster: LocalCluster, ended: float) -> None:
    wait_for(lambda: update_pending(cluster).get("status") == "False",
             "the pending update applied", timeout=60)  # fmt: skip
    say(f"The broadcast ended: the waiting change was applied {time.monotonic() - ended:.1f}s"
        " later (Event UpdateApplied), and the on-air budget is gone:")  # fmt: skip
    wait_for(lambda: livestreams.ready(cluster, NS, LS), "the LiveStream Ready again", 120)
    show(cluster, "-n", NS, "get", "pdb")
    wait_ingest_reachable(cluster, NS, LS)


def broadcast(cluster: LocalCluster, seconds: float) -> None:
    _, key = ingest_from_host(cluster, NS, LS)
    url = livestreams.status(cluster, NS, LS)["ingest"]["rtmpsUrl"]
    wait_service_reachable(cluster, NS, f"{LS}-ingest", contract.RTMPS_PORT, 30)
    before_files = {s: sink_files(cluster, NS, s) for s in SINKS.values()}
    before = {s: sum(files.values()) for s, files in before_files.items()}
    say(f"Publishing a test pattern for {seconds:g}s from this host over RTMPS to {url}/<key>")
    say(f"(the Service's name resolved by the cluster's DNS, its certificate checked against "
        f"{shown(DEMO_CA)}):")  # fmt: skip
    pub = Publisher(url, key, seconds, ca_file=str(DEMO_CA), wrapper=with_cluster_dns(STATE_DIR))
    changed = False
    try:
        while pub.alive():
            time.sleep(3)
            st = livestreams.status(cluster, NS, LS)
            restreams = st.get("restreams") or []
            states = ", ".join(f"{r['name']} {r.get('state', '?')}" for r in restreams)
            got = ", ".join(
                f"{s} +{(sum(sink_files(cluster, NS, s).values()) - before[s]) / 1024:.0f} KiB"
                for s in SINKS.values()
            )
            say(f"  +{time.monotonic() - pub.started:4.1f}s broadcasting={st.get('broadcasting')}"
                f" [{states}] recorded: {got}")  # fmt: skip
            if st.get("broadcasting") and not changed and pub.alive():
                change_while_live(cluster)
                changed = True
        if pub.wait(10) != 0:
            say(f"the publisher failed: {pub.stderr()}")
    finally:
        pub.stop()
    ended = time.monotonic()
    time.sleep(3)
    say()
    show(cluster, "-n", NS, "get", "livestream", LS)
    for sink in SINKS.values():
        show(cluster, "-n", NS, "exec", sink, "--", "ls", "-l", "/tmp/rec")
    # Relays wait on the stream before the broadcast: each sink has it from the first frame.
    for sink in SINKS.values():
        files = [f for f in sink_files(cluster, NS, sink) if f not in before_files[sink]]
        for name in files:
            t = sink_tracks(cluster, NS, sink, name)
            say(f"{sink} {name}: {t['video_frames']} video frames of the encoder's "
                f"{seconds * FPS:.0f}, the first a keyframe: {t['first_keyframe']}; "
                f"audio for {t['audio_seconds']:.1f}s")  # fmt: skip
    say()
    if changed:
        after_broadcast(cluster, ended)


def real_node_demo(cluster: LocalCluster, containerd: str) -> int:
    install(cluster, containerd)
    apply_demo(cluster)
    show(cluster, "-n", NS, "get", "livestreams")
    show(cluster, "-n", NS, "get", "pods", "-o", "wide")
    seconds = float(os.environ.get("DEMO_PUBLISH_SECONDS", "15"))
    if seconds > 0:
        broadcast(cluster, seconds)
    url, _ = ingest_from_host(cluster, NS, LS)
    ingest = livestreams.status(cluster, NS, LS)["ingest"]
    say("Real: every pod above runs in containerd on this machine's node (kubelet,")
    say("runc, CNI bridge 10.244.0.0/24, kube-proxy, CoreDNS). The sinks are nginx-rtmp")
    say("pods recording what they receive, in place of YouTube and Twitch.")
    say()
    say("Publish yourself (from this host; the ingest Service's ClusterIP is routed here):")
    say(f"  OBS: Settings > Stream > Custom, Server {url}, Stream Key:")
    say(f"       kubectl get secret {LS}-stream-key -o jsonpath='{{.data.streamKey}}' | base64 -d")
    say(f"  RTMPS: {ingest.get('rtmpsUrl')}, trusting {shown(DEMO_CA)}; the name resolves")
    say(f"       in the cluster's DNS ({CLUSTER_DNS}) or, from the host, as the ClusterIP above")
    say(f"  SRT:   {ingest.get('srtUrl')}, the stream key as its passphrase")
    say("  ffmpeg, a test pattern until Ctrl-C:  make publish  (DURATION=60 for a minute)")
    say("Recordings: kubectl exec sink-youtube -- ls -l /tmp/rec")
    footer()
    return 0


# -- on kwok's simulated node --------------------------------------------------------------


def operator_running() -> bool:
    if not PIDFILE.exists():
        return False
    try:
        cmdline = Path(f"/proc/{int(PIDFILE.read_text())}/cmdline").read_bytes()
    except OSError:
        return False
    return b"restream_operator" in cmdline


def simulated_demo(cluster: LocalCluster, why: str) -> int:
    cluster.kubectl("apply", "--server-side", "-f", str(CHECKOUT / "crds"))
    cluster.wait_established("livestreams.restream.dev")
    if not operator_running():
        # The example's destinations are public names: the operator does not resolve
        # them (a demo should not depend on DNS to the internet); the name checks apply.
        proc = OperatorProcess(
            KUBECONFIG, LOG, env={"RESTREAM_AGENT_POLL_SECONDS": "2"}, detached=True
        )
        proc.start("--webhook", f"local:127.0.0.1:{free_port()}")
        assert proc.process is not None
        PIDFILE.write_text(str(proc.process.pid))
    wait_for_webhooks(cluster, timeout=60)
    out = cluster.kubectl("apply", "-f", str(CHECKOUT / "examples" / "api-video-compatible.yaml"))
    say(out.stdout.strip())
    for line in out.stderr.strip().splitlines():
        say(f"  {line}")
    wait_for(lambda: livestreams.ready(cluster, NS, LS), "the LiveStream to be Ready")
    say()
    show(cluster, "get", "livestreams", "-o", "wide")
    show(cluster, "get", "deployments,services,secrets", "-l", f"restream.dev/livestream={LS}")
    say(f"No real node: {why}.")
    say("What is simulated: the node is kwok's. Pods are scheduled and report Ready, but")
    say("nothing runs in them: no agent answers, so the restreams show Unknown (healthy by")
    say("their pods' readiness) and nothing can be published. The rest is real: the")
    say("apiserver, the CRD and its rules, the admission webhooks, the operator and the")
    say("objects it made.")
    say(f"The operator logs to {LOG}. Try: kubectl edit livestream {LS}")
    footer()
    return 0


def main(argv: list[str]) -> int:
    if not STATE.exists():
        print("demo: no local cluster; run `make cluster-up` first", file=sys.stderr)
        return 1
    cluster, state = attach()
    node = state.get("node")
    if argv[:1] == ["publish"]:
        if not node:
            print("demo: `make publish` needs the real node (see `make demo`)", file=sys.stderr)
            return 1
        seconds = float(argv[1]) if len(argv) > 1 and float(argv[1]) > 0 else None
        url, key = ingest_from_host(cluster, NS, LS)
        pub = Publisher(url, key, seconds)
        say(f"publishing to {url}/<key> {'until Ctrl-C' if seconds is None else f'{seconds:g}s'}")
        try:
            rc = pub.wait(seconds + 30 if seconds else 10**9)
        except KeyboardInterrupt:
            rc = 0
        finally:
            pub.stop()
        if rc:
            print(pub.stderr(), file=sys.stderr)
        return rc
    try:
        if node:
            node_state = NodeState.load()
            if node_state is None:
                raise ClusterError(f"node {node} has no state file; `make cluster-down` first")
            return real_node_demo(cluster, node_state.containerd_address)
        return simulated_demo(cluster, state.get("why_simulated") or "no real node")
    except (ClusterError, AssertionError) as e:  # AssertionError: wait_for timed out
        print(f"demo: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
