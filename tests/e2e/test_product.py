"""The whole product on the real node (issue 7): the operator installed with the Helm
chart runs as a real pod and serves its webhook from it; a LiveStream applied with
kubectl gets real ingest and relay pods (the project's images) that carry a real stream
from an ffmpeg publisher on the host to three nginx-rtmp sink pods; status tells the
truth; destinations are isolated; pods and the operator recover when deleted.

Timings measured here are printed (``pytest -s``) as ``FIGURE name value``.
"""

from __future__ import annotations

import contextlib
import json
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hack.localcluster.node import NodeCluster
from hack.localcluster.pki import CertificateAuthority, KeyPair, fingerprint, served_fingerprint
from hack.localcluster.product import (
    RELEASE,
    SYSTEM_NS,
    VERSION,
    chart_values,
    ingest_from_host,
    sink_files,
    tls_secret,
    wait_service_reachable,
    with_cluster_dns,
)
from hack.media.encoder import Publisher
from hack.media.harness import GrowthSampler, codecs_and_duration, packet_times
from hack.waiting import wait_for

from .show import (
    LS,
    all_live,
    apply,
    dest,
    diagnosed,
    fetch_recording,
    figure,
    get_json,
    installed,
    livestream,
    ls_pods,
    max_gap,
    operator_pod,
    publisher,
    publishing,
    ready,
    relay_pods,
    restream_states,
    status,
    wait_all_ready,
    wait_status,
)

pytestmark = pytest.mark.e2e

SINKS = ("sink-1", "sink-2", "sink-3", "sink-4")
FLV_HEADER = 13  # 9-byte header + the first PreviousTagSize


def sink_total(cluster: NodeCluster, ns: str, sink: str) -> int:
    return sum(sink_files(cluster, ns, sink).values())


# -- fixtures -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def product(node_cluster: NodeCluster, node_namespace: str) -> Iterator[dict[str, Any]]:
    """Images imported into the node, the chart installed (operator pod on the real
    node, webhook served from it), four sink pods with their Services."""
    with installed(node_cluster, node_namespace, SINKS, chart_values(agent_poll_seconds=1)):
        yield {"ns": node_namespace, "tmp": node_cluster.workdir}


# -- 1. the operator from the chart --------------------------------------------------------


def test_operator_pod_serves_the_webhook(
    node_cluster: NodeCluster, product: dict[str, Any]
) -> None:
    cluster, ns = node_cluster, product["ns"]
    pods = get_json(cluster, SYSTEM_NS, "pods", "-l", f"app.kubernetes.io/instance={RELEASE}")
    assert len(pods["items"]) == 1
    pod = pods["items"][0]
    assert pod["spec"]["nodeName"] == cluster.node.name
    assert ready(pod)
    assert pod["status"]["containerStatuses"][0]["containerID"].startswith("containerd://")
    vwc = wait_for(
        lambda: cluster.kubectl("get", "validatingwebhookconfiguration", f"{RELEASE}-{SYSTEM_NS}",
                                "-o", "json", check=False).stdout or None,
        "the operator to register its webhook configuration", timeout=60,
    )  # fmt: skip
    hooks = json.loads(str(vwc))["webhooks"]
    names = [h["name"] for h in hooks]
    assert "validate.livestreams.restream.dev" in names
    svc = hooks[0]["clientConfig"]["service"]
    assert (svc["namespace"], svc["name"]) == (SYSTEM_NS, f"{RELEASE}-webhook")
    assert hooks[0]["clientConfig"].get("caBundle")

    # A scheme the schema allows? Whatever the schema says, the answer must come from the
    # webhook in the pod for a rule only it knows: more destinations than maxRestreams (5).
    too_many = livestream(ns, [dest(i, "sink-1", ns) for i in range(1, 7)])
    too_many["metadata"]["name"] = "too-many"

    def refused() -> subprocess.CompletedProcess[str] | None:
        p = apply(cluster, ns, too_many, check=False)
        return p if p.returncode != 0 and "admission webhook" in p.stderr else None

    proc = wait_for(refused, "the webhook to answer", timeout=60)
    assert proc is not None
    assert 'admission webhook "validate.livestreams.restream.dev"' in proc.stderr, proc.stderr
    print(f"\nrefused: {proc.stderr.strip()}")
    bad = livestream(ns, [{"name": "x", "serverUrl": "http://x", "streamKey": "k"}])
    bad["metadata"]["name"] = "bad-scheme"
    proc = apply(cluster, ns, bad, check=False)
    assert proc.returncode != 0
    print(f"refused: {proc.stderr.strip()}")
    assert not cluster.kubectl("-n", ns, "get", "livestreams", "-o", "name").stdout.strip()


# -- 2. three destinations, a real stream ------------------------------------------------


def first_bytes(
    cluster: NodeCluster,
    ns: str,
    sinks: list[str],
    since: float,
    timeout: float = 60,
    pub: Publisher | None = None,
) -> dict[str, float]:
    """Seconds from ``since`` until each sink's recordings grew past the FLV header
    (failing at once, with its errors, if the publisher ``pub`` gives up)."""
    base = {s: sink_files(cluster, ns, s) for s in sinks}
    out: dict[str, float] = {}
    deadline = time.monotonic() + timeout
    while len(out) < len(sinks) and time.monotonic() < deadline:
        if pub is not None and not pub.alive():
            raise AssertionError(f"the publisher exited {pub.proc.returncode}: {pub.stderr()}")
        for s in sinks:
            if s in out:
                continue
            files = sink_files(cluster, ns, s)
            if any(size > FLV_HEADER and size != base[s].get(n) for n, size in files.items()):
                out[s] = round(time.monotonic() - since, 2)
        time.sleep(0.1)
    assert len(out) == len(sinks), f"no bytes at {set(sinks) - set(out)} after {timeout}s"
    return out


def test_three_destinations_carry_a_real_stream(
    node_cluster: NodeCluster, product: dict[str, Any]
) -> None:
    cluster, ns = node_cluster, product["ns"]
    names = ["dest-1", "dest-2", "dest-3"]
    with diagnosed(cluster, ns):
        doc = livestream(ns, [dest(1, "sink-1", ns), dest(2, "sink-2", ns), dest(3, "sink-3", ns)])
        t0 = time.monotonic()
        apply(cluster, ns, doc)
        ready_s = wait_all_ready(cluster, ns, names)
        figure("apply_to_all_pods_ready_s", round(time.monotonic() - t0, 2))
        pods = ls_pods(cluster, ns)
        assert all(p["spec"]["nodeName"] == cluster.node.name for p in pods)
        assert {p["spec"]["containers"][0]["image"] for p in pods} == {
            f"restream-operator/media:{VERSION}"
        } or all("media" in p["spec"]["containers"][0]["image"] for p in pods)
        wait_status(
            cluster, ns, lambda st: st.get("ingest", {}).get("rtmpUrl"), "ingest status", 60
        )
        del ready_s
        sinks = ["sink-1", "sink-2", "sink-3"]
        with publishing(cluster, ns, 60) as pub:
            fb = first_bytes(cluster, ns, sinks, pub.started, pub=pub)
            figure("publisher_start_to_first_byte_s", fb)
            wait_status(cluster, ns, all_live(names), "broadcasting and every restream Live", 30)
            figure("publisher_start_to_all_live_in_status_s",
                   round(time.monotonic() - pub.started, 2))  # fmt: skip
            wait_for(lambda: all(ready(p) for p in ls_pods(cluster, ns)), "relays Ready", 30)
            figure("publisher_start_to_all_pods_Ready_s", round(time.monotonic() - pub.started, 2))
            # while publishing, it stays so
            samples = 0
            while pub.alive() and time.monotonic() - pub.started < 55:
                st = status(cluster, ns)
                assert all_live(names)(st), json.dumps(st)
                samples += 1
                time.sleep(2)
            rc = pub.wait(30)
            assert rc == 0, pub.stderr()
            stopped = time.monotonic()
            wait_status(cluster, ns, lambda st: st.get("broadcasting") is False,
                        "broadcasting: false", 5)  # fmt: skip
            figure("publisher_stop_to_broadcasting_false_s", round(time.monotonic() - stopped, 2))
        time.sleep(2)  # nginx-rtmp closes the recordings once the relays' streams end
        tmp = Path(tempfile.mkdtemp(dir=product["tmp"]))
        for s in sinks:
            files = sink_files(cluster, ns, s)
            assert len(files) == 1, f"{s}: {files}"
            rec = fetch_recording(cluster, ns, s, next(iter(files)), tmp)
            codecs, duration = codecs_and_duration(rec)
            print(f"{s}: {codecs} {duration:.1f}s {rec.stat().st_size} bytes")
            assert {"h264", "aac"} <= codecs
            assert duration >= 55


# -- 3. one destination changes while live; the others do not notice ----------------------


def test_change_one_destination_while_live(
    node_cluster: NodeCluster, product: dict[str, Any]
) -> None:
    cluster, ns = node_cluster, product["ns"]
    with diagnosed(cluster, ns):
        before = relay_pods(cluster, ns)
        pod1 = before["dest-1"]["metadata"]["name"]
        old = {s: set(sink_files(cluster, ns, s)) for s in SINKS}
        with publishing(cluster, ns, None) as pub:
            wait_status(cluster, ns, all_live(["dest-1", "dest-2", "dest-3"]), "all Live", 30)

            def sink1_bytes() -> int:  # the new recordings only
                files = sink_files(cluster, ns, "sink-1")
                return sum(size for n, size in files.items() if n not in old["sink-1"])

            # every sample is a kubectl exec: about 0.2 s apart at best
            with GrowthSampler({"sink-1": sink1_bytes}, every=0.2) as sampler:
                time.sleep(5)
                changed = livestream(
                    ns,
                    [dest(1, "sink-1", ns), dest(2, "sink-4", ns), dest(3, "sink-3", ns, False)],
                )
                t0 = time.monotonic()
                apply(cluster, ns, changed)
                fb = first_bytes(cluster, ns, ["sink-4"], t0, timeout=30, pub=pub)
                figure("change_to_first_byte_at_new_sink_s", fb["sink-4"])
                st = wait_status(
                    cluster, ns,
                    lambda st: all_live(["dest-1", "dest-2"])(st)
                    and restream_states(st).get("dest-3") == "Disabled",
                    "dest-1, dest-2 Live and dest-3 Disabled", 30,
                )  # fmt: skip
                figure("change_to_status_settled_s", round(time.monotonic() - t0, 2))
                time.sleep(8)
                assert pub.alive(), pub.stderr()
            stall = sampler.longest_between_changes("sink-1")
            figure("sink1_longest_growth_stall_s", round(stall, 2))
            times = [t for t, _ in sampler.samples["sink-1"]]
            figure("sink1_sampling_longest_interval_s", round(max_gap(times), 2))
        assert fb["sink-4"] <= 10
        after = relay_pods(cluster, ns)
        assert after["dest-1"]["metadata"]["name"] == pod1
        assert after["dest-1"]["status"]["containerStatuses"][0]["restartCount"] == 0
        assert "dest-3" not in after
        assert restream_states(st)["dest-3"] == "Disabled"
        # sink-1 got one uninterrupted recording for the whole session
        time.sleep(2)
        new1 = {
            n: s for n, s in sink_files(cluster, ns, "sink-1").items() if n not in old["sink-1"]
        }
        assert len(new1) == 1, new1
        tmp = Path(tempfile.mkdtemp(dir=product["tmp"]))
        rec = fetch_recording(cluster, ns, "sink-1", next(iter(new1)), tmp)
        gap = max_gap(packet_times(rec))
        figure("sink1_max_video_dts_gap_s", round(gap, 3))
        assert gap <= 1.0
        assert stall <= 1.0, f"sink-1's recording did not grow for {stall:.2f}s"


# -- 4. relay and ingest pods deleted: everything recovers by itself -----------------------


class ReconnectingPublisher:
    """An encoder that reconnects like OBS does: when its connection drops, it starts
    again after a second (the ingest Service's address does not change)."""

    def __init__(self, cluster: NodeCluster, ns: str) -> None:
        self.cluster, self.ns = cluster, ns
        self.pub: Publisher | None = None
        self.restarts = 0
        self.events: list[tuple[float, int | None, str]] = []  # (restart time, rc, stderr)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ReconnectingPublisher:
        self.pub = publisher(self.cluster, self.ns, None)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(30)
        if self.pub is not None:
            self.pub.stop()

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            if self.pub is not None and not self.pub.alive():
                self._stop.wait(1)
                if self._stop.is_set():
                    return
                self.restarts += 1
                self.events.append((time.monotonic(), self.pub.proc.returncode,
                                    self.pub.stderr()[-300:]))  # fmt: skip
                with contextlib.suppress(Exception):
                    self.pub = publisher(self.cluster, self.ns, None)


def recovered(cluster: NodeCluster, ns: str, before: dict[str, set[str]], names: list[str],
              t0: float, timeout: float = 60) -> dict[str, float]:  # fmt: skip
    """Seconds from t0 until each sink records a new session (nginx-rtmp's
    record_unique: a new file per incoming stream) with media in it, and until the
    status shows every restream Live again."""
    out: dict[str, float] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and len(out) < len(before) + 1:
        for s, old in before.items():
            if s in out:
                continue
            new = {n: size for n, size in sink_files(cluster, ns, s).items() if n not in old}
            if any(size > 64 * 1024 for size in new.values()):
                out[s] = round(time.monotonic() - t0, 2)
        if "status" not in out and all_live(names)(status(cluster, ns)):
            out["status"] = round(time.monotonic() - t0, 2)
        time.sleep(0.2)
    assert len(out) == len(before) + 1, f"not recovered after {timeout}s: {out}"
    return out


def test_deleted_pods_recover(node_cluster: NodeCluster, product: dict[str, Any]) -> None:
    cluster, ns = node_cluster, product["ns"]
    names = ["dest-1", "dest-2", "dest-3"]
    sinks = ["sink-1", "sink-4", "sink-3"]
    with diagnosed(cluster, ns):
        apply(cluster, ns, livestream(
            ns, [dest(1, "sink-1", ns), dest(2, "sink-4", ns), dest(3, "sink-3", ns)]
        ))  # fmt: skip
        wait_all_ready(cluster, ns, names)
        with ReconnectingPublisher(cluster, ns) as enc:
            wait_status(cluster, ns, all_live(names), "all Live", 30)
            time.sleep(3)
            # a relay pod
            victim = relay_pods(cluster, ns)["dest-1"]["metadata"]["name"]
            files = {"sink-1": set(sink_files(cluster, ns, "sink-1"))}
            t0 = time.monotonic()
            cluster.kubectl("-n", ns, "delete", "pod", victim, "--wait=false")
            # wait for the status to notice, then for it and the sink to come back
            wait_status(cluster, ns, lambda st: restream_states(st)["dest-1"] != "Live",
                        "dest-1 to leave Live", 15)  # fmt: skip
            rec = recovered(cluster, ns, files, names, t0)
            assert relay_pods(cluster, ns)["dest-1"]["metadata"]["name"] != victim
            figure("relay_pod_delete_recovery_s", rec)
            time.sleep(3)
            # the ingest pod: the encoder's connection drops; it reconnects by itself
            ingest = next(p["metadata"]["name"] for p in ls_pods(cluster, ns)
                          if p["metadata"]["name"].startswith(f"{LS}-ingest-"))  # fmt: skip
            files = {s: set(sink_files(cluster, ns, s)) for s in sinks}
            t0 = time.monotonic()
            cluster.kubectl("-n", ns, "delete", "pod", ingest, "--wait=false")
            wait_status(cluster, ns, lambda st: not all_live(names)(st),
                        "status to notice the ingest going", 20)  # fmt: skip
            figure("ingest_delete_to_status_not_live_s", round(time.monotonic() - t0, 2))
            rec = recovered(cluster, ns, files, names, t0, timeout=30)
            figure("ingest_pod_delete_recovery_s", rec)
            if rec["status"] > 10:  # slow: show the LiveStream's timeline
                print(cluster.kubectl("-n", ns, "get", "events", "--sort-by=.lastTimestamp",
                                  "-o", "custom-columns=T:.lastTimestamp,OBJ:.involvedObject.name,"
                                  "R:.reason,M:.message", check=False).stdout[-6000:])  # fmt: skip
            if rec["status"] > 10:  # and what a relay's agent said
                relay = relay_pods(cluster, ns)["dest-3"]["metadata"]["name"]
                logs = cluster.kubectl("-n", ns, "logs", relay, check=False).stdout
                print("\n".join(ln for ln in logs.splitlines() if "ingest" in ln)[-3000:])
            figure("encoder_reconnects", enc.restarts)
            for t, rc, err in enc.events:
                print(f"encoder restarted at delete+{t - t0:.2f}s after exit {rc}: {err!r}")
            time.sleep(3)
            assert all_live(names)(status(cluster, ns))
        wait_status(cluster, ns, lambda st: st.get("broadcasting") is False,
                    "broadcasting: false", 5)  # fmt: skip


# -- 5. the operator pod killed during a change ------------------------------------------


def test_operator_killed_during_a_change(
    node_cluster: NodeCluster, product: dict[str, Any]
) -> None:
    cluster, ns = node_cluster, product["ns"]
    names = ["dest-1", "dest-2", "dest-3"]
    with diagnosed(cluster, ns):
        old_op = operator_pod(cluster)
        assert old_op is not None
        gen_before = get_json(cluster, ns, "livestream", LS)["metadata"]["generation"]
        changed = livestream(
            ns, [dest(1, "sink-1", ns), dest(2, "sink-4", ns), dest(3, "sink-2", ns)]
        )
        t0 = time.monotonic()
        apply(cluster, ns, changed)  # admitted by the webhook of the pod about to die
        cluster.kubectl("-n", SYSTEM_NS, "delete", "pod", old_op["metadata"]["name"],
                        "--grace-period=0", "--force", "--wait=false")  # fmt: skip
        killed_after = time.monotonic() - t0
        figure("change_applied_to_operator_killed_s", round(killed_after, 3))
        ls = get_json(cluster, ns, "livestream", LS)
        gen = ls["metadata"]["generation"]
        assert gen == gen_before + 1
        at_kill = (ls.get("status") or {}).get("observedGeneration")
        print(f"observedGeneration right after the kill: {at_kill} (generation {gen})")

        def replaced() -> dict[str, Any] | None:
            p = operator_pod(cluster)
            if p and p["metadata"]["name"] != old_name and ready(p):
                return p
            return None

        old_name = old_op["metadata"]["name"]
        new_op = wait_for(replaced, "a new operator pod Ready", timeout=120)
        assert new_op is not None
        figure("operator_kill_to_new_pod_ready_s", round(time.monotonic() - t0, 2))
        assert new_op["spec"]["nodeName"] == cluster.node.name
        wait_status(cluster, ns, lambda st: st.get("observedGeneration") == gen,
                    "the change reconciled", 60)  # fmt: skip
        figure("change_to_reconciled_with_operator_restart_s", round(time.monotonic() - t0, 2))
        wait_all_ready(cluster, ns, names)
        # it really relays to the new sink, and the figures: kubelet stats per relay pod
        old2 = set(sink_files(cluster, ns, "sink-2"))
        with publishing(cluster, ns, None) as pub:
            wait_status(cluster, ns, all_live(names), "all Live", 30)
            wait_for(lambda: any(n not in old2 and size > 64 * 1024 for n, size in
                                 sink_files(cluster, ns, "sink-2").items()),
                     "dest-3's stream at sink-2", 30)  # fmt: skip
            time.sleep(10)
            relay_stats(cluster, ns)
            assert pub.alive(), pub.stderr()


# -- 6. figures --------------------------------------------------------------------------


def relay_stats(cluster: NodeCluster, ns: str, samples: int = 3) -> None:
    """CPU and memory of each relay and the ingest pod from the kubelet's summary API."""
    per_pod: dict[str, list[tuple[float, float, float]]] = {}
    for _ in range(samples):
        summary = json.loads(cluster.kubectl(
            "get", "--raw", f"/api/v1/nodes/{cluster.node.name}/proxy/stats/summary"
        ).stdout)  # fmt: skip
        for pod in summary.get("pods", []):
            ref = pod["podRef"]
            if ref["namespace"] != ns or not ref["name"].startswith(f"{LS}-"):
                continue
            cpu = sum((c.get("cpu") or {}).get("usageNanoCores", 0) for c in pod["containers"])
            rss = sum((c.get("memory") or {}).get("rssBytes", 0) for c in pod["containers"])
            ws = sum((c.get("memory") or {}).get("workingSetBytes", 0) for c in pod["containers"])
            per_pod.setdefault(ref["name"], []).append((cpu / 1e6, rss / 2**20, ws / 2**20))
        time.sleep(5)
    out = {
        name: {
            "cpu_millicores": round(statistics.median(v[0] for v in vals), 1),
            "rss_MiB": round(statistics.median(v[1] for v in vals), 1),
            "working_set_MiB": round(statistics.median(v[2] for v in vals), 1),
        }
        for name, vals in per_pod.items()
    }
    figure("kubelet_stats_while_live_1200kbps", out)
    relays = [k for k in out if k.startswith(f"{LS}-relay-")]
    assert len(relays) == 3, out
    assert all(out[r]["rss_MiB"] > 0 for r in relays), out


def test_apply_to_ready_median_of_3(node_cluster: NodeCluster, product: dict[str, Any]) -> None:
    cluster, ns = node_cluster, product["ns"]
    names = ["dest-1", "dest-2", "dest-3"]
    doc = livestream(ns, [dest(1, "sink-1", ns), dest(2, "sink-2", ns), dest(3, "sink-3", ns)])
    times = []
    with diagnosed(cluster, ns):
        for _ in range(3):
            cluster.kubectl("-n", ns, "delete", "livestream", LS, "--wait=true", "--timeout=60s",
                            timeout=70)  # fmt: skip
            wait_for(lambda: not ls_pods(cluster, ns), "the LiveStream's pods gone", 60)
            t0 = time.monotonic()
            apply(cluster, ns, doc)
            wait_all_ready(cluster, ns, names)
            times.append(round(time.monotonic() - t0, 2))
    figure("apply_to_all_pods_ready_s_runs", times)
    figure("apply_to_all_pods_ready_s_median", statistics.median(times))


# -- 7. RTMPS through the Service, its certificate from a Secret (issue 19) ------------------

TLS_SECRET = f"{LS}-ingest-tls"


def test_rtmps_through_the_service_with_a_certificate_from_a_secret(
    node_cluster: NodeCluster, product: dict[str, Any]
) -> None:
    """The certificate comes from a kubernetes.io/tls Secret created after the LiveStream
    (as cert-manager issues it); an encoder on the host resolves the Service's name
    through the cluster's DNS, publishes to the rtmpsUrl of the status and verifies the
    certificate, host name included; a renewal of the Secret reaches new clients while
    that encoder stays live."""
    cluster, ns = node_cluster, product["ns"]
    names = ["dest-1", "dest-2", "dest-3"]
    sinks = ["sink-1", "sink-2", "sink-3"]
    tmp = Path(tempfile.mkdtemp(dir=product["tmp"]))
    ca = CertificateAuthority(tmp)
    host = f"{LS}-ingest.{ns}.svc.cluster.local"

    def issue(stem: str) -> KeyPair:
        return ca.issue(stem, host, dns_names=(host, f"{LS}-ingest.{ns}.svc"), server=True)

    doc = livestream(ns, [dest(1, "sink-1", ns), dest(2, "sink-2", ns), dest(3, "sink-3", ns)])
    doc["spec"]["ingest"] = {"tls": {"secretRef": {"name": TLS_SECRET}}}
    with diagnosed(cluster, ns):
        apply(cluster, ns, doc)
        st = wait_status(
            cluster, ns,
            lambda st: st.get("ingest", {}).get("rtmpsUrl") and any(
                TLS_SECRET in c.get("message", "") for c in st.get("conditions") or []
            ),
            "the status to name the missing TLS Secret", 60,
        )  # fmt: skip
        url = st["ingest"]["rtmpsUrl"]
        assert url == f"rtmps://{host}:1936/live", url
        print(f"\nbefore the Secret: {json.dumps(st['conditions'])}")

        t0 = time.monotonic()
        cluster.kubectl("-n", ns, "apply", "-f", "-",
                        input=json.dumps(tls_secret(TLS_SECRET, issue("first"))))  # fmt: skip
        wait_all_ready(cluster, ns, names)
        wait_status(
            cluster, ns,
            lambda st: "rtmpsError" not in st.get("ingest", {})
            and not any(TLS_SECRET in c.get("message", "") for c in st.get("conditions") or []),
            "RTMPS served", 120,
        )  # fmt: skip
        svc = get_json(cluster, ns, "svc", f"{LS}-ingest")
        assert 1936 in [p["port"] for p in svc["spec"]["ports"]], svc["spec"]["ports"]
        address = svc["spec"]["clusterIP"]
        wait_service_reachable(cluster, ns, f"{LS}-ingest", 1936, 60)

        def served() -> str:  # what a new client is given, verified (CA and name)
            return served_fingerprint(address, 1936, ca=ca.pair.cert, server_name=host)

        first = served()
        figure("tls_secret_created_to_rtmps_served_s", round(time.monotonic() - t0, 2))

        _, key = ingest_from_host(cluster, ns, LS)
        resolver = with_cluster_dns(tmp)
        # An encoder that trusts another CA refuses the ingest's certificate before it
        # sends anything of the stream (its key included).
        (tmp / "other").mkdir()
        other = CertificateAuthority(tmp / "other", "another CA")
        untrusting = Publisher(url, key, 5, ca_file=str(other.pair.cert), wrapper=resolver)
        try:
            assert untrusting.wait(20) != 0, "a certificate from an unknown CA must be refused"
        finally:
            untrusting.stop()
        print(f"untrusting encoder: {untrusting.stderr().strip()[-300:]}")
        assert status(cluster, ns).get("broadcasting") is not True

        ingest_pod = next(p for p in ls_pods(cluster, ns)
                          if p["metadata"]["name"].startswith(f"{LS}-ingest-"))  # fmt: skip
        old = {s: set(sink_files(cluster, ns, s)) for s in sinks}
        pub = Publisher(url, key, None, ca_file=str(ca.pair.cert), wrapper=resolver)
        try:
            fb = first_bytes(cluster, ns, sinks, pub.started, pub=pub)
            figure("rtmps_publisher_start_to_first_byte_s", fb)
            st = wait_status(cluster, ns, all_live(names), "broadcasting over RTMPS", 30)
            assert st["ingest"].get("clientProtocol") == "RTMPS", st["ingest"]
            client = st["ingest"].get("clientAddress")
            print(f"client: RTMPS from {client}")

            # cert-manager renews: a new key and certificate in the same Secret.
            time.sleep(3)
            t0 = time.monotonic()
            second = issue("second")
            cluster.kubectl("-n", ns, "apply", "-f", "-",
                            input=json.dumps(tls_secret(TLS_SECRET, second)))  # fmt: skip
            wait_for(lambda: served() != first,
                     "the renewed certificate served to new clients", timeout=90,
                     every=0.5)  # fmt: skip
            figure("tls_secret_renewed_to_new_certificate_served_s",
                   round(time.monotonic() - t0, 2))  # fmt: skip
            assert served() == fingerprint(second.cert.read_bytes())
            time.sleep(5)
            assert pub.alive(), f"the renewal dropped the live encoder: {pub.stderr()}"
            assert all_live(names)(status(cluster, ns))
        finally:
            pub.stop()
        now = next(p for p in ls_pods(cluster, ns)
                   if p["metadata"]["name"].startswith(f"{LS}-ingest-"))  # fmt: skip
        assert now["metadata"]["uid"] == ingest_pod["metadata"]["uid"]
        assert all(c["restartCount"] == 0 for c in now["status"]["containerStatuses"])
        time.sleep(2)  # nginx-rtmp closes the recordings once the relays' streams end
        for s in sinks:
            new = [n for n in sink_files(cluster, ns, s) if n not in old[s]]
            assert len(new) == 1, f"{s}: one recording for the whole broadcast, got {new}"
            rec = fetch_recording(cluster, ns, s, new[0], tmp)
            codecs, duration = codecs_and_duration(rec)
            gap = max_gap(packet_times(rec))
            print(f"{s}: {codecs} {duration:.1f}s, longest gap {gap:.2f}s")
            assert {"h264", "aac"} <= codecs
            assert gap <= 1.0
