"""Operating while live (issue 13) on the real node: what an operations team does to a
cluster never cuts a broadcast.

One LiveStream with three destinations, three nginx-rtmp sink pods, the chart installed
once. While an ffmpeg encoder on the host publishes (one that never reconnects: a
dropped connection ends it, so "still alive" means "never disconnected"):

1. ``helm upgrade`` to a new media image tag (the same image retagged in the node's
   containerd) and a changed operator setting that reaches the relays' pod templates:
   no pod is replaced or restarted, every sink records on without a stall, the status
   says an update waits; when the encoder stops, the update rolls out within 30 s.
2. ``kubectl drain`` of the node: the eviction API refuses the live pods (their
   PodDisruptionBudget); when the encoder stops, the drain completes.
3. the operator's pod deleted: the new one touches no child pod.
4. a waiting update forced with the ``restream.dev/rollout=now`` annotation: applied at
   once, to the relays only, as only their templates changed.
5. drift, while idle: a relay Deployment scaled to 0, another's args edited, the
   ingest's internal Service deleted, a NetworkPolicy edited: each is restored within
   15 s.

The sinks' recordings are watched from the host, in the sink pods' emptyDir on the
node (a stat every 0.1 s, where an exec per look would sample them a second apart).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hack.localcluster import livestreams
from hack.localcluster.node import NodeCluster
from hack.localcluster.product import (
    MEDIA_IMAGE,
    SYSTEM_NS,
    VERSION,
    chart_values,
    reported_on_failure,
    sink_recordings,
    wait_webhook_reachable,
)
from hack.media.harness import GrowthSampler, codecs_and_duration, packet_times
from hack.waiting import wait_for
from restream_operator import naming
from restream_operator.rollout import ANNOTATION_ROLLOUT, ROLLOUT_NOW

from .show import (
    LS,
    all_live,
    apply,
    dest,
    evidence,
    figure,
    get_json,
    installed,
    livestream,
    ls_pods,
    max_gap,
    operator_pod,
    publishing,
    ready,
    relay_pods,
    status,
    wait_all_ready,
    wait_status,
)

pytestmark = pytest.mark.e2e

SINKS = ("sink-1", "sink-2", "sink-3")
NAMES = ["dest-1", "dest-2", "dest-3"]
NEXT_TAG = f"{VERSION}-next"
NEXT_MEDIA_IMAGE = f"{MEDIA_IMAGE.rsplit(':', 1)[0]}:{NEXT_TAG}"
# the chart's default, the first upgrade's, the second's (forced)
MAX_DELAY, NEXT_MAX_DELAY, FORCED_MAX_DELAY = 10, 12, 14
PDB = naming.on_air_budget(LS)
LS_SELECTOR = f"{naming.LABEL_LIVESTREAM}={LS}"
REPAIR_LIMIT_S = 15


# -- reading the cluster ------------------------------------------------------------------


def condition(st: dict[str, Any], type_: str) -> dict[str, Any]:
    """The status condition of that type ({} when absent)."""
    return next((c for c in st.get("conditions") or [] if c.get("type") == type_), {})


def is_true(st: dict[str, Any], type_: str) -> bool:
    return condition(st, type_).get("status") == "True"


def kstatus(cluster: NodeCluster, ns: str) -> str:
    return livestreams.kstatus(cluster, livestreams.get(cluster, ns, LS))


def events(cluster: NodeCluster, ns: str, reason: str) -> list[dict[str, Any]]:
    """The Events with that reason on the LiveStream."""
    selector = f"involvedObject.kind=LiveStream,involvedObject.name={LS},reason={reason}"
    return list(get_json(cluster, ns, "events", "--field-selector", selector)["items"])


def pods_now(cluster: NodeCluster, ns: str) -> dict[str, tuple[str, int]]:
    """Pod name -> (UID, restarts of its containers) for the LiveStream's pods: equal
    before and after means that no pod was replaced and no container restarted."""
    return {
        p["metadata"]["name"]: (
            p["metadata"]["uid"],
            sum(c.get("restartCount", 0) for c in p["status"].get("containerStatuses") or []),
        )
        for p in ls_pods(cluster, ns)
    }


def deployments(cluster: NodeCluster, ns: str) -> dict[str, dict[str, Any]]:
    """The LiveStream's Deployments by name."""
    items = get_json(cluster, ns, "deployments", "-l", LS_SELECTOR)["items"]
    return {d["metadata"]["name"]: d for d in items}


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    return container_of(deployment["spec"]["template"])


def container_of(pod: dict[str, Any]) -> dict[str, Any]:
    """The only container of a pod (or of a pod template)."""
    return dict(pod["spec"]["containers"][0])


def templates(cluster: NodeCluster, ns: str) -> dict[str, tuple[str, list[str]]]:
    """Deployment name -> (image, args) of its pod template."""
    return {
        name: (container(d)["image"], container(d)["args"])
        for name, d in deployments(cluster, ns).items()
    }


def arg(args: list[str], flag: str) -> str:
    return args[args.index(flag) + 1]


def tag(image: str) -> str:
    return image.rsplit(":", 1)[1]


def all_pods(cluster: NodeCluster, ns: str) -> list[dict[str, Any]]:
    """The LiveStream's pods, terminating ones included."""
    return list(get_json(cluster, ns, "pods", "-l", LS_SELECTOR)["items"])


def pdb(cluster: NodeCluster, ns: str) -> dict[str, Any] | None:
    got = cluster.kubectl("-n", ns, "get", "pdb", PDB, "-o", "json", check=False)
    return dict(json.loads(got.stdout)) if got.returncode == 0 else None


def new_bytes(directory: Path, old: set[str]) -> Callable[[], int]:
    """What a sink recorded since ``old`` (the file names it had before)."""

    def size() -> int:
        return sum(f.stat().st_size for f in directory.glob("*.flv") if f.name not in old)

    return size


def recordings(directory: Path) -> set[str]:
    return {f.name for f in directory.glob("*.flv")}


def wait_new_operator(cluster: NodeCluster, old: dict[str, Any], what: str) -> None:
    """Until a new operator pod replaced ``old``, is Ready and its webhook reachable."""

    def replaced() -> dict[str, Any] | None:
        p = operator_pod(cluster)
        return p if p and p["metadata"]["name"] != old["metadata"]["name"] and ready(p) else None

    wait_for(replaced, what, timeout=120)
    wait_webhook_reachable(cluster)


def live_evidence(ns: str) -> list[tuple[str, ...]]:
    return [
        *evidence(ns),
        ("-n", ns, "get", "pdb", "-o", "yaml"),
        ("-n", ns, "get", "deployments,replicasets", "-o", "wide"),
        ("-n", SYSTEM_NS, "get", "pods", "-o", "yaml"),
    ]


def diagnosed(cluster: NodeCluster, ns: str) -> contextlib.AbstractContextManager[None]:
    return reported_on_failure(cluster, live_evidence(ns))


# -- the fixture ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def live_ops(node_cluster: NodeCluster, node_namespace: str) -> Iterator[dict[str, Any]]:
    """The product installed, the three sinks, and the LiveStream with its pods Ready."""
    cluster, ns = node_cluster, node_namespace
    with installed(cluster, ns, SINKS, chart_values(agent_poll_seconds=1)) as helm:
        with diagnosed(cluster, ns):
            wait_webhook_reachable(cluster)
            apply(cluster, ns, livestream(ns, [dest(i, s, ns) for i, s in enumerate(SINKS, 1)]))
            wait_all_ready(cluster, ns, NAMES)
        yield {"ns": ns, "helm": helm, "tmp": Path(tempfile.mkdtemp(dir=cluster.workdir))}


# -- 1. helm upgrade while live --------------------------------------------------------


def upgraded_values(max_delay: int = NEXT_MAX_DELAY) -> dict[str, Any]:
    values = chart_values(agent_poll_seconds=1)
    values["mediaImage"]["tag"] = NEXT_TAG
    values["operator"]["reconnectMaxDelaySeconds"] = max_delay
    return values


def test_helm_upgrade_while_live_waits_for_the_broadcast_to_end(
    node_cluster: NodeCluster, live_ops: dict[str, Any]
) -> None:
    cluster, ns = node_cluster, live_ops["ns"]
    with diagnosed(cluster, ns):
        dirs = {s: sink_recordings(cluster, ns, s) for s in SINKS}
        old = {s: recordings(d) for s, d in dirs.items()}
        before_templates = templates(cluster, ns)
        assert len(before_templates) == 1 + len(NAMES), before_templates
        for name, (image, args) in before_templates.items():
            assert tag(image) == VERSION, (name, image)
            if "--max-delay" in args:
                assert arg(args, "--max-delay") == str(MAX_DELAY), (name, args)
        with publishing(cluster, ns, None) as pub:
            wait_status(cluster, ns, all_live(NAMES), "all Live", 30)
            session_start = time.monotonic()
            before = pods_now(cluster, ns)
            assert len(before) == 1 + len(NAMES), before
            old_op = operator_pod(cluster)
            assert old_op is not None
            sizes = {s: new_bytes(dirs[s], old[s]) for s in SINKS}
            with GrowthSampler(sizes, every=0.1) as sampler:
                time.sleep(3)
                cluster.node.tag_image(MEDIA_IMAGE, NEXT_MEDIA_IMAGE)
                t0 = time.monotonic()
                live_ops["helm"].install(upgraded_values())
                wait_new_operator(cluster, old_op, "the upgraded operator pod Ready")
                figure("helm_upgrade_to_operator_ready_s", round(time.monotonic() - t0, 2))

                def pending(st: dict[str, Any]) -> bool:
                    # fails at once, saying why, if the broadcast was cut meanwhile
                    assert pub.alive(), f"the encoder was disconnected: {pub.stderr()}"
                    assert pods_now(cluster, ns) == before, "a live pod was replaced"
                    return is_true(st, "UpdatePending")

                st = wait_status(cluster, ns, pending, "UpdatePending True", 60)
                figure("helm_upgrade_to_update_pending_s", round(time.monotonic() - t0, 2))
                waiting = condition(st, "UpdatePending")
                print(f"\nUpdatePending: {json.dumps(waiting)}")
                assert waiting.get("reason") == "WaitingForBroadcastEnd", waiting
                assert waiting.get("message"), waiting
                assert is_true(st, "Reconciling"), st.get("conditions")
                wait_for(lambda: events(cluster, ns, "UpdatePending"),
                         "an UpdatePending Event on the LiveStream", timeout=15)  # fmt: skip
                time.sleep(15)
                assert pub.alive(), f"the encoder was disconnected: {pub.stderr()}"
                assert pods_now(cluster, ns) == before
                assert templates(cluster, ns) == before_templates  # nothing applied yet
                st = status(cluster, ns)
                assert all_live(NAMES)(st), json.dumps(st)
                assert is_true(st, "UpdatePending"), st.get("conditions")
                # what Flux's health check (kstatus) makes of it: still in progress
                assert kstatus(cluster, ns) == "InProgress"
            stalls = {s: round(sampler.longest_stall(s), 2) for s in SINKS}
            figure("upgrade_sink_longest_growth_stall_s", stalls)
            looks = {s: [t for t, _ in sampler.samples[s]] for s in SINKS}
            figure("upgrade_sink_samples", {s: len(t) for s, t in looks.items()})
            figure("upgrade_sink_longest_sampling_interval_s",
                   {s: round(max_gap(t), 2) for s, t in looks.items()})  # fmt: skip
            session_s = time.monotonic() - session_start
            pub.stop()
            stopped = time.monotonic()

            def rolled_out() -> bool:
                pods = all_pods(cluster, ns)
                st = status(cluster, ns)
                return (
                    len(pods) == 1 + len(NAMES)
                    and all(tag(container_of(p)["image"]) == NEXT_TAG for p in pods)
                    and all(ready(p) and not p["metadata"].get("deletionTimestamp") for p in pods)
                    and condition(st, "UpdatePending").get("status") == "False"
                )

            wait_for(rolled_out, "every pod on the new image, UpdatePending False", timeout=90)
            rollout_s = round(time.monotonic() - stopped, 2)
            figure("broadcast_end_to_rollout_done_s", rollout_s)
        wait_for(lambda: events(cluster, ns, "UpdateApplied"),
                 "an UpdateApplied Event on the LiveStream", timeout=15)  # fmt: skip
        after = templates(cluster, ns)
        for name, (image, args) in after.items():
            assert tag(image) == NEXT_TAG, (name, image)
            if "--max-delay" in args:
                assert arg(args, "--max-delay") == str(NEXT_MAX_DELAY), (name, args)
        st = wait_status(cluster, ns, lambda st: is_true(st, "Ready")
                         and condition(st, "Reconciling").get("status") == "False",
                         "Ready True, Reconciling False", 30)  # fmt: skip
        assert not is_true(st, "Stalled"), st.get("conditions")
        assert kstatus(cluster, ns) == "Current"
        # each sink got one recording for the whole session, without a gap
        time.sleep(2)  # nginx-rtmp closes a recording when the relay's stream ends
        gaps = {}
        for s in SINKS:
            new = recordings(dirs[s]) - old[s]
            assert len(new) == 1, f"{s}: {new}"
            rec = dirs[s] / next(iter(new))
            gaps[s] = round(max_gap(packet_times(rec)), 3)
            codecs, duration = codecs_and_duration(rec)
            assert {"h264", "aac"} <= codecs, (s, codecs)
            assert duration >= session_s - 3, (s, duration, session_s)
        figure("upgrade_sink_max_video_dts_gap_s", gaps)
        assert all(g <= 1.0 for g in gaps.values()), gaps
        assert all(s <= 1.0 for s in stalls.values()), stalls
        assert rollout_s <= 30


# -- 2. drain while live ---------------------------------------------------------------


def eviction(ns: str, pod: str) -> dict[str, Any]:
    return {
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": pod, "namespace": ns},
    }


def test_drain_while_live_waits_for_the_broadcast_to_end(
    node_cluster: NodeCluster, live_ops: dict[str, Any]
) -> None:
    cluster, ns, node = node_cluster, live_ops["ns"], node_cluster.node.name
    log = live_ops["tmp"] / "drain.log"
    with diagnosed(cluster, ns):
        wait_all_ready(cluster, ns, NAMES)
        with publishing(cluster, ns, None) as pub:
            wait_status(cluster, ns, all_live(NAMES), "all Live", 30)
            t_live = time.monotonic()
            before = pods_now(cluster, ns)

            def protecting() -> dict[str, Any] | None:
                budget = pdb(cluster, ns)
                st = (budget or {}).get("status") or {}
                ok = st.get("expectedPods") == len(before) and st.get("disruptionsAllowed") == 0
                return budget if budget and ok else None

            budget = wait_for(protecting, f"the PodDisruptionBudget {PDB} over every pod", 30)
            assert budget is not None
            figure("all_live_to_pdb_protecting_s", round(time.monotonic() - t_live, 2))
            assert budget["spec"]["maxUnavailable"] == 0, budget["spec"]
            assert budget["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow", budget["spec"]

            victim = relay_pods(cluster, ns)["dest-1"]["metadata"]["name"]
            refused = cluster.kubectl(
                "create", "--raw", f"/api/v1/namespaces/{ns}/pods/{victim}/eviction", "-f", "-",
                input=json.dumps(eviction(ns, victim)), check=False,
            )  # fmt: skip
            print(f"\none eviction: {refused.stderr.strip()}")
            assert refused.returncode != 0, refused.stdout
            assert "TooManyRequests" in refused.stderr or "429" in refused.stderr, refused.stderr
            assert "disruption budget" in refused.stderr, refused.stderr

            with log.open("wb") as out:
                drain = subprocess.Popen(
                    [str(cluster.kubectl_path), f"--kubeconfig={cluster.kubeconfig}", "drain",
                     node, f"--pod-selector={LS_SELECTOR}", "--ignore-daemonsets",
                     "--delete-emptydir-data", "--timeout=120s"],
                    stdout=out, stderr=subprocess.STDOUT,
                )  # fmt: skip
            try:
                wait_for(lambda: "disruption budget" in log.read_text(),
                         "the drain to be refused by the disruption budget", 15)  # fmt: skip
                time.sleep(10)  # a retry or two (every 5 s): still refused
                print(log.read_text()[-1500:])
                assert drain.poll() is None, log.read_text()
                assert pods_now(cluster, ns) == before
                assert pub.alive(), f"the encoder was disconnected: {pub.stderr()}"
                st = status(cluster, ns)
                assert all_live(NAMES)(st), json.dumps(st)
                pub.stop()
                stopped = time.monotonic()
                rc = drain.wait(150)
                figure("encoder_stop_to_drain_done_s", round(time.monotonic() - stopped, 2))
                assert rc == 0, log.read_text()
            finally:
                if drain.poll() is None:
                    drain.terminate()
                    drain.wait(10)
                cluster.kubectl("uncordon", node)
        assert pdb(cluster, ns) is None, "the PodDisruptionBudget outlived the broadcast"
        wait_all_ready(cluster, ns, NAMES)


# -- 3. the operator pod deleted while live --------------------------------------------


def test_operator_pod_deleted_while_live_touches_no_child(
    node_cluster: NodeCluster, live_ops: dict[str, Any]
) -> None:
    cluster, ns = node_cluster, live_ops["ns"]
    with diagnosed(cluster, ns), publishing(cluster, ns, None) as pub:
        wait_status(cluster, ns, all_live(NAMES), "all Live", 30)
        budget = wait_for(lambda: pdb(cluster, ns), f"the PodDisruptionBudget {PDB}", 30)
        assert budget is not None
        before = pods_now(cluster, ns)
        generations = {n: d["metadata"]["generation"] for n, d in deployments(cluster, ns).items()}
        old_op = operator_pod(cluster)
        assert old_op is not None
        t0 = time.monotonic()
        cluster.kubectl("-n", SYSTEM_NS, "delete", "pod", old_op["metadata"]["name"],
                        "--wait=false")  # fmt: skip
        wait_new_operator(cluster, old_op, "a new operator pod Ready")
        figure("operator_pod_delete_to_new_pod_ready_s", round(time.monotonic() - t0, 2))
        time.sleep(15)
        assert pub.alive(), f"the encoder was disconnected: {pub.stderr()}"
        assert pods_now(cluster, ns) == before
        after = {n: d["metadata"]["generation"] for n, d in deployments(cluster, ns).items()}
        assert after == generations  # not one pod template rewritten
        st = status(cluster, ns)
        assert all_live(NAMES)(st), json.dumps(st)
        still = pdb(cluster, ns)
        assert still is not None
        assert still["metadata"]["uid"] == budget["metadata"]["uid"]
    wait_status(cluster, ns, lambda st: st.get("broadcasting") is False,
                "broadcasting: false", 15)  # fmt: skip


# -- 4. a waiting update forced while live ----------------------------------------------


def test_rollout_now_applies_a_waiting_update_while_live(
    node_cluster: NodeCluster, live_ops: dict[str, Any]
) -> None:
    """A setting that reaches the relays only waits like any other; forced, it replaces
    the relays at once, and the ingest, whose template did not change, stays: the
    encoder stays connected and the destinations come back."""
    cluster, ns = node_cluster, live_ops["ns"]
    with diagnosed(cluster, ns):
        wait_all_ready(cluster, ns, NAMES)
        with publishing(cluster, ns, None) as pub:
            wait_status(cluster, ns, all_live(NAMES), "all Live", 30)
            before = pods_now(cluster, ns)
            ingest = {n: v for n, v in before.items() if n.startswith(naming.ingest_name(LS))}
            assert len(ingest) == 1, before
            old_op = operator_pod(cluster)
            assert old_op is not None
            live_ops["helm"].install(upgraded_values(max_delay=FORCED_MAX_DELAY))
            wait_new_operator(cluster, old_op, "the upgraded operator pod Ready")

            def pending(st: dict[str, Any]) -> bool:
                assert pub.alive(), f"the encoder was disconnected: {pub.stderr()}"
                assert pods_now(cluster, ns) == before, "a live pod was replaced"
                return is_true(st, "UpdatePending")

            st = wait_status(cluster, ns, pending, "UpdatePending True", 60)
            print(f"\nUpdatePending: {json.dumps(condition(st, 'UpdatePending'))}")
            t0 = time.monotonic()
            cluster.kubectl("-n", ns, "annotate", "livestream", LS,
                            f"{ANNOTATION_ROLLOUT}={ROLLOUT_NOW}")  # fmt: skip

            def applied() -> bool:
                ingest_prefix = naming.ingest_name(LS)
                relays = [
                    p for p in all_pods(cluster, ns)
                    if not p["metadata"]["name"].startswith(ingest_prefix)
                ]  # fmt: skip
                fresh = [
                    p["metadata"]["name"] not in before
                    and ready(p)
                    and not p["metadata"].get("deletionTimestamp")
                    and arg(container_of(p)["args"], "--max-delay") == str(FORCED_MAX_DELAY)
                    for p in relays
                ]
                ls = get_json(cluster, ns, "livestream", LS)
                annotations = ls["metadata"].get("annotations") or {}
                waiting = condition(ls.get("status") or {}, "UpdatePending").get("status")
                return (
                    len(relays) == len(NAMES)
                    and all(fresh)
                    and ANNOTATION_ROLLOUT not in annotations
                    and waiting == "False"
                )

            wait_for(applied, "new relay pods with the new setting, the annotation removed, "
                     "UpdatePending False", timeout=60)  # fmt: skip
            figure("rollout_now_to_relays_replaced_s", round(time.monotonic() - t0, 2))
            wait_status(cluster, ns, all_live(NAMES), "all Live again", 30)
            figure("rollout_now_to_all_live_again_s", round(time.monotonic() - t0, 2))
            assert pub.alive(), f"the encoder was disconnected: {pub.stderr()}"
            now = pods_now(cluster, ns)
            assert {n: v for n, v in now.items() if n in ingest} == ingest, now


# -- 5. drift ----------------------------------------------------------------------------


def repaired(checks: dict[str, Callable[[], bool]], since: dict[str, float]) -> dict[str, float]:
    """Seconds from each edit (``since``) until its check passes; those never seen
    restored within twice the limit are left out."""
    out: dict[str, float] = {}
    deadline = time.monotonic() + 2 * REPAIR_LIMIT_S
    while len(out) < len(checks) and time.monotonic() < deadline:
        for name, ok in checks.items():
            if name not in out and ok():
                out[name] = round(time.monotonic() - since[name], 2)
        time.sleep(0.25)
    return out


def test_drift_is_repaired(node_cluster: NodeCluster, live_ops: dict[str, Any]) -> None:
    cluster, ns = node_cluster, live_ops["ns"]
    scaled = naming.relay_name(LS, "dest-1")
    edited = naming.relay_name(LS, "dest-2")
    service = naming.ingest_internal_name(LS)
    policy = naming.ingest_name(LS)  # the ingest's NetworkPolicy
    with diagnosed(cluster, ns):
        wait_all_ready(cluster, ns, NAMES)
        deps = deployments(cluster, ns)
        generation = {n: deps[n]["metadata"]["generation"] for n in (scaled, edited)}
        assert deps[scaled]["spec"]["replicas"] == 1
        args = container(deps[edited])["args"]
        svc_uid = get_json(cluster, ns, "service", service)["metadata"]["uid"]
        policy_spec = get_json(cluster, ns, "networkpolicy", policy)["spec"]
        assert policy_spec.get("ingress") != [{}], policy_spec

        since: dict[str, float] = {}
        since[scaled] = time.monotonic()
        cluster.kubectl("-n", ns, "scale", "deployment", scaled, "--replicas=0")
        since[edited] = time.monotonic()
        livestreams.edit_relay_arg(cluster, ns, edited, "--max-delay", "3")
        since[service] = time.monotonic()
        cluster.kubectl("-n", ns, "delete", "service", service, "--wait=false")
        since[policy] = time.monotonic()
        # an edit that opens every port of the ingest to everyone
        cluster.kubectl("-n", ns, "patch", "networkpolicy", policy, "--type=merge",
                        "-p", json.dumps({"spec": {"ingress": [{}]}}))  # fmt: skip

        def scale_restored() -> bool:
            return bool(get_json(cluster, ns, "deployment", scaled)["spec"]["replicas"] == 1)

        def args_restored() -> bool:
            return bool(container(get_json(cluster, ns, "deployment", edited))["args"] == args)

        def service_restored() -> bool:
            got = cluster.kubectl("-n", ns, "get", "service", service, "-o", "json", check=False)
            return got.returncode == 0 and json.loads(got.stdout)["metadata"]["uid"] != svc_uid

        def policy_restored() -> bool:
            return bool(get_json(cluster, ns, "networkpolicy", policy)["spec"] == policy_spec)

        times = repaired(
            {
                scaled: scale_restored,
                edited: args_restored,
                service: service_restored,
                policy: policy_restored,
            },
            since,
        )
        figure("drift_repair_s", times)
        for name in (scaled, edited, service, policy):
            assert name in times, f"{name} not restored within {2 * REPAIR_LIMIT_S}s: {times}"
            assert times[name] <= REPAIR_LIMIT_S, times
        deps = deployments(cluster, ns)
        for name in (scaled, edited):
            # the edit and the repair each changed the spec: the edit did land
            assert deps[name]["metadata"]["generation"] >= generation[name] + 2, name
        wait_all_ready(cluster, ns, NAMES)
        st = wait_status(cluster, ns, lambda st: is_true(st, "Ready")
                         and condition(st, "Reconciling").get("status") == "False",
                         "Ready True, Reconciling False", 30)  # fmt: skip
        assert not is_true(st, "Stalled"), st.get("conditions")
