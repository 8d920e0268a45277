"""The one reconcile path and the status loop, driven directly against the real API.

The session's operator process is stopped meanwhile: these tests' Runtime is the only
one reconciling, and the operator would take the writes of a Runtime with other
settings (an "upgraded" one) for someone else's and repair them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import config

from hack.localcluster import livestreams
from hack.localcluster.controlplane import LocalCluster
from hack.localcluster.operator_process import OperatorProcess, wait_for_webhooks
from hack.waiting import wait_for
from restream_operator import (
    handlers,
    naming,
    protection,
    reconcile,
    rollout,
    status,
    statusloop,
)
from restream_operator.kube import FIELD_MANAGER, Kube, Obj
from restream_operator.render import owner_from_object
from restream_operator.runtime import Runtime
from restream_operator.secretrefs import MissingSecret, SecretUse
from restream_operator.settings import Settings
from restream_operator.views import DeploymentView, PodView, fingerprint, written_view
from restream_operator.watches import Watch
from tests.cluster_tests import objects

pytestmark = pytest.mark.cluster


class CountingKube(Kube):
    """The real client, counting status writes and reads by kind."""

    status_writes = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reads: list[str] = []

    def patch_status(self, namespace: str, name: str, patch: Obj) -> Obj:
        self.status_writes += 1
        return super().patch_status(namespace, name, patch)

    def get(self, kind: str, namespace: str | None, name: str) -> Obj | None:
        self.reads.append(f"{kind}/{name}")
        return super().get(kind, namespace, name)


@pytest.fixture(scope="module", autouse=True)
def operator_away(cluster: LocalCluster, operator: OperatorProcess) -> Iterator[None]:
    operator.stop()  # removes its webhook configuration on the way out
    try:
        yield
    finally:
        operator.start()
        wait_for_webhooks(cluster)


@pytest.fixture
def runtime(cluster: LocalCluster, crds: None) -> Runtime:
    api = config.new_client_from_config(config_file=str(cluster.kubeconfig))  # type: ignore[no-untyped-call]
    return Runtime(settings=Settings(), kube=CountingKube(api))


def restream(name: str, secret: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "serverUrl": "rtmp://a.example.com/app"}
    if secret:
        out["streamKeySecretRef"] = {"name": secret, "key": "key"}
    else:
        out["streamKey"] = "k-" + name
    return out


def create(cluster: LocalCluster, namespace: str, *restreams: dict[str, Any]) -> dict[str, Any]:
    doc = {
        "apiVersion": "restream.dev/v1alpha1",
        "kind": "LiveStream",
        "metadata": {"name": "launch", "namespace": namespace},
        "spec": {"restreams": list(restreams)},
    }
    out = cluster.kubectl("create", "-o", "json", "-f", "-", input=json.dumps(doc))
    return dict(json.loads(out.stdout))


def test_a_reconcile_waits_for_the_one_already_running_on_the_same_livestream(
    cluster: LocalCluster, namespace: str, runtime: Runtime
) -> None:
    obj = create(cluster, namespace, restream("Youtube"))
    outcomes: list[reconcile.Outcome | None] = []
    worker = threading.Thread(
        target=lambda: outcomes.append(reconcile.reconcile(runtime, obj, "repair"))
    )
    with runtime.lock(obj["metadata"]["uid"]):  # as a reconcile in another thread would
        worker.start()
        worker.join(1.5)
        assert worker.is_alive(), "a second reconcile ran while the first held the lock"
        assert outcomes == []
    worker.join(30)
    assert outcomes and outcomes[0] is not None
    assert f"Deployment/{naming.relay_name('launch', 'Youtube')}" in outcomes[0].applied


def test_a_reconcile_works_from_the_newest_spec_seen_and_records_it(
    cluster: LocalCluster, namespace: str, runtime: Runtime
) -> None:
    stale = create(cluster, namespace, restream("Youtube"))
    patch = {"spec": {"restreams": [restream("Youtube"), restream("Twitch", secret="tw")]}}
    out = cluster.kubectl(
        "patch",
        "livestream",
        "launch",
        "-n",
        namespace,
        "--type=merge",
        "-o",
        "json",
        "-p",
        json.dumps(patch),
    )
    newest = dict(json.loads(out.stdout))
    runtime.remember(newest)  # what the watch delivered meanwhile

    outcome = reconcile.reconcile(runtime, stale, "update")  # a handler on the older event

    assert outcome is not None
    assert f"Deployment/{naming.relay_name('launch', 'Twitch')}" in outcome.applied
    state = runtime.stream(stale["metadata"]["uid"])
    assert state.reconciled_generation == newest["metadata"]["generation"] == 2
    assert state.reconcile_failure is None
    assert state.missing_secrets == (MissingSecret(SecretUse("tw", "key", "Twitch")),)


def test_a_livestream_being_deleted_is_not_reconciled(
    cluster: LocalCluster, namespace: str, runtime: Runtime
) -> None:
    obj = create(cluster, namespace, restream("Youtube"))
    obj["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert reconcile.reconcile(runtime, obj, "update") is None
    assert runtime.stream(obj["metadata"]["uid"]).reconciled_generation is None


def counted(cluster: LocalCluster, namespace: str, runtime: Runtime) -> tuple[str, CountingKube]:
    """A LiveStream with one destination, created and reconciled once: its uid, and the
    client that counts the status writes."""
    obj = reconciled(cluster, namespace, runtime, restream("Youtube"))
    assert isinstance(runtime.kube, CountingKube)
    return obj["metadata"]["uid"], runtime.kube


def status_pass(runtime: Runtime, uid: str) -> None:
    """One pass of the status loop over the LiveStream."""
    asyncio.run(statusloop.refresh(runtime, uid, asyncio.Semaphore(1)))


def test_the_status_loop_writes_a_status_once_and_then_only_on_change(
    cluster: LocalCluster, namespace: str, runtime: Runtime
) -> None:
    uid, kube = counted(cluster, namespace, runtime)
    status_pass(runtime, uid)
    assert kube.status_writes == 1
    written = runtime.stream(uid).written
    assert written is not None
    assert written["observedGeneration"] == 1
    assert {c["type"] for c in written["conditions"]} >= {"Ready", "IngestReady"}
    # Nothing observed changed: nothing is written (the loop runs every second).
    for _ in range(3):
        status_pass(runtime, uid)
    assert kube.status_writes == 1


def test_off_air_the_same_inputs_are_not_recomputed_and_a_change_is(
    cluster: LocalCluster, namespace: str, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    uid, kube = counted(cluster, namespace, runtime)
    computed: list[dict[str, Any]] = []

    def compute_status(*args: Any, **kwargs: Any) -> dict[str, Any]:
        computed.append(out := real(*args, **kwargs))
        return out

    real = status.compute_status
    monkeypatch.setattr("restream_operator.statusloop.compute_status", compute_status)

    status_pass(runtime, uid)  # the first status
    status_pass(runtime, uid)  # from the status just written: changes nothing, remembered
    assert (len(computed), kube.status_writes) == (2, 1)
    for _ in range(3):
        status_pass(runtime, uid)
    assert (len(computed), kube.status_writes) == (2, 1)

    # Something observed changes: the ingest's pod cannot pull its image.
    key = (namespace, "launch")
    runtime.child_changed(key, DeploymentView(naming.ingest_name("launch")))
    runtime.child_changed(
        key, PodView("launch-ingest-x", "ingest", waiting_reason="ImagePullBackOff")
    )
    status_pass(runtime, uid)
    assert (len(computed), kube.status_writes) == (3, 2)
    ingest_ready = [c for c in computed[-1]["conditions"] if c["type"] == "IngestReady"]
    assert ingest_ready[0]["reason"] == "ImagePullBackOff"


# -- operating while live: what waits for the broadcast, what does not ----------------------

UPGRADED = Settings(
    ingest_image="restream-operator/media:next",
    relay_image="restream-operator/media:next",
    reconnect_max_delay_seconds=12,
)


def reconciled(
    cluster: LocalCluster, namespace: str, runtime: Runtime, *restreams: dict[str, Any]
) -> dict[str, Any]:
    """A LiveStream created and reconciled once by ``runtime`` (the operator before)."""
    obj = create(cluster, namespace, *restreams)
    runtime.remember(obj)
    reconcile.reconcile(runtime, obj, "create")
    return obj


def deployments(cluster: LocalCluster, namespace: str) -> dict[str, dict[str, Any]]:
    out = cluster.kubectl(
        "get", "deployments", "-n", namespace, "-o", "json", "--show-managed-fields",
        "-l", f"{naming.LABEL_LIVESTREAM}=launch",
    )  # fmt: skip
    return {d["metadata"]["name"]: d for d in json.loads(out.stdout)["items"]}


def images(cluster: LocalCluster, namespace: str) -> dict[str, str]:
    return {
        name: d["spec"]["template"]["spec"]["containers"][0]["image"]
        for name, d in deployments(cluster, namespace).items()
    }


def ours(obj: dict[str, Any]) -> list[dict[str, Any]]:
    """The operator's entries in the object's managed fields (what it set, and when)."""
    return [e for e in obj["metadata"]["managedFields"] if e["manager"] == FIELD_MANAGER]


def upgraded(runtime: Runtime, broadcasting: bool) -> Runtime:
    """The operator after an upgrade: the same API, new settings and images."""
    out = Runtime(settings=UPGRADED, kube=runtime.kube)
    for uid, obj in runtime.livestreams.items():
        out.remember(obj)
        out.stream(uid).broadcasting = broadcasting
    return out


def test_an_operator_upgrade_while_broadcasting_writes_nothing_and_waits(
    cluster: LocalCluster, namespace: str, runtime: Runtime
) -> None:
    obj = reconciled(cluster, namespace, runtime, restream("Youtube"), restream("Twitch"))
    uid = obj["metadata"]["uid"]
    before = deployments(cluster, namespace)
    assert set(images(cluster, namespace).values()) == {Settings().relay_image}

    live = upgraded(runtime, broadcasting=True)
    outcome = reconcile.reconcile(live, obj, "resume")

    assert outcome is not None
    assert sorted(p.child for p in outcome.pending) == ["Twitch", "Youtube", "ingest"]
    assert all("spec.containers" in " ".join(p.changes) for p in outcome.pending)
    after = deployments(cluster, namespace)
    # Not one write of the operator's changed a Deployment: the same generation, and its
    # managed-fields entry untouched (the controller writes status meanwhile).
    for name, d in before.items():
        assert after[name]["metadata"]["generation"] == d["metadata"]["generation"], name
        assert ours(after[name]) == ours(d), name
    assert live.stream(uid).pending == tuple(outcome.pending)

    # A hand edit while held is undone, with the template that runs (not the new one).
    yt = naming.relay_name("launch", "Youtube")
    cluster.kubectl("scale", "deployment", yt, "-n", namespace, "--replicas=0")
    reconcile.reconcile(live, obj, "repair")
    restored = deployments(cluster, namespace)[yt]
    assert restored["spec"]["replicas"] == 1
    assert restored["spec"]["template"]["spec"]["containers"][0]["image"] == Settings().relay_image

    # The broadcast ends: everything rolls to the new rendering, nothing waits any more.
    live.stream(uid).broadcasting = False
    outcome = reconcile.reconcile(live, obj, "repair")
    assert outcome is not None and not outcome.pending
    assert sorted(outcome.rolled) == ["Twitch", "Youtube", "ingest"]
    assert set(images(cluster, namespace).values()) == {UPGRADED.relay_image}
    args = deployments(cluster, namespace)[yt]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--max-delay") + 1] == "12"


def test_a_destinations_own_change_rolls_it_while_the_others_wait(
    cluster: LocalCluster, namespace: str, runtime: Runtime
) -> None:
    reconciled(cluster, namespace, runtime, restream("Youtube"), restream("Twitch"))
    changed = {
        "restreams": [
            restream("Youtube"),
            {**restream("Twitch"), "serverUrl": "rtmp://c.example.com/x"},
        ]
    }
    out = cluster.kubectl(
        "patch", "livestream", "launch", "-n", namespace, "--type=merge", "-o", "json",
        "-p", json.dumps({"spec": changed}),
    )  # fmt: skip
    newest = dict(json.loads(out.stdout))
    live = upgraded(runtime, broadcasting=True)
    live.remember(newest)
    outcome = reconcile.reconcile(live, newest, "update")
    assert outcome is not None
    assert outcome.rolled == ["Twitch"]
    assert sorted(p.child for p in outcome.pending) == ["Youtube", "ingest"]
    now = images(cluster, namespace)
    assert now[naming.relay_name("launch", "Twitch")] == UPGRADED.relay_image
    assert now[naming.relay_name("launch", "Youtube")] == Settings().relay_image


def test_a_forced_rollout_applies_now_and_the_annotation_goes(
    cluster: LocalCluster, namespace: str, runtime: Runtime
) -> None:
    reconciled(cluster, namespace, runtime, restream("Youtube"))
    out = cluster.kubectl(
        "annotate", "livestream", "launch", "-n", namespace, "-o", "json",
        f"{rollout.ANNOTATION_ROLLOUT}={rollout.ROLLOUT_NOW}",
    )  # fmt: skip
    annotated = dict(json.loads(out.stdout))
    live = upgraded(runtime, broadcasting=True)
    live.remember(annotated)
    outcome = reconcile.reconcile(live, annotated, "repair")
    assert outcome is not None and not outcome.pending
    assert set(images(cluster, namespace).values()) == {UPGRADED.relay_image}
    ls = json.loads(
        cluster.kubectl("get", "livestream", "launch", "-n", namespace, "-o", "json").stdout
    )
    assert rollout.ANNOTATION_ROLLOUT not in (ls["metadata"].get("annotations") or {})


def test_fingerprints_tell_the_operators_writes_from_anyone_elses(
    cluster: LocalCluster, namespace: str, runtime: Runtime
) -> None:
    obj = create(cluster, namespace, restream("Youtube"))
    uid = obj["metadata"]["uid"]
    reconcile.reconcile(runtime, obj, "create")
    state = runtime.stream(uid)
    yt = naming.relay_name("launch", "Youtube")
    ref = ("Deployment", yt)

    def current() -> str:
        return fingerprint(deployments(cluster, namespace)[yt])

    # The controller writes the Deployment's status meanwhile: not a change of ours to undo.
    wait_for(
        lambda: deployments(cluster, namespace)[yt].get("status", {}).get("observedGeneration"),
        "the Deployment controller to write its status",
        timeout=30,
    )
    assert not state.drifted(ref, current())
    livestreams.edit_relay_arg(cluster, namespace, yt, "--destination", "rtmp://evil.example.com/x")
    assert state.drifted(ref, current())
    reconcile.reconcile(runtime, obj, "repair")
    args = deployments(cluster, namespace)[yt]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "rtmp://evil.example.com/x" not in args
    assert not runtime.stream(uid).drifted(ref, current())


def evict(cluster: LocalCluster, namespace: str, pod: str) -> tuple[int, str]:
    """POSTs an Eviction for the pod, as `kubectl drain` does: (0 or 1, what it said)."""
    eviction = {"apiVersion": "policy/v1", "kind": "Eviction",
                "metadata": {"name": pod, "namespace": namespace}}  # fmt: skip
    out = cluster.kubectl(
        "create", "--raw", f"/api/v1/namespaces/{namespace}/pods/{pod}/eviction", "-f", "-",
        input=json.dumps(eviction), check=False,
    )  # fmt: skip
    return out.returncode, out.stdout + out.stderr


def test_the_on_air_budget_refuses_evictions_while_broadcasting_and_goes_after(
    cluster: LocalCluster, namespace: str, runtime: Runtime
) -> None:
    obj = reconciled(cluster, namespace, runtime, restream("Youtube"))
    owner = owner_from_object(obj)
    state = runtime.stream(obj["metadata"]["uid"])
    views = runtime.views((namespace, "launch"))
    name = naming.on_air_budget("launch")

    def pods() -> list[str]:
        out = cluster.kubectl(
            "get", "pods", "-n", namespace, "-o", "name", "-l", f"{naming.LABEL_LIVESTREAM}=launch"
        )
        return [line.split("/", 1)[1] for line in out.stdout.split()]

    wait_for(lambda: len(pods()) == 2, "the ingest and relay pods", timeout=60)
    asyncio.run(protection.keep(runtime, owner, views, state, broadcasting=True))
    budget = json.loads(
        cluster.kubectl("get", "pdb", name, "-n", namespace, "-o", "json", "--show-managed-fields")
        .stdout
    )  # fmt: skip
    assert budget["spec"]["maxUnavailable"] == 0
    assert budget["metadata"]["ownerReferences"][0]["uid"] == obj["metadata"]["uid"]
    views.put(written_view("PodDisruptionBudget", budget))  # as the watch would
    for pod in pods():
        code, said = evict(cluster, namespace, pod)
        assert code != 0, f"{pod} was evicted while on air"
        assert "disruption budget" in said, said

    state.budget_written_at = 0.0  # past the rate limit
    asyncio.run(protection.keep(runtime, owner, views, state, broadcasting=False))
    gone = cluster.kubectl("get", "pdb", name, "-n", namespace, check=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr
    code, said = evict(cluster, namespace, pods()[0])
    assert code == 0, said


def test_a_budget_of_that_name_someone_else_made_is_never_taken_over(
    cluster: LocalCluster, namespace: str, runtime: Runtime
) -> None:
    obj = create(cluster, namespace, restream("Youtube"))
    name = naming.on_air_budget("launch")
    theirs = {
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
        "metadata": {"name": name, "labels": naming.labels("launch", naming.COMPONENT_ON_AIR)},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "theirs"}}},
    }  # fmt: skip
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(theirs))
    state = runtime.stream(obj["metadata"]["uid"])
    views = runtime.views((namespace, "launch"))
    owner = owner_from_object(obj)
    asyncio.run(protection.keep(runtime, owner, views, state, broadcasting=True))
    budget = json.loads(cluster.kubectl("get", "pdb", name, "-n", namespace, "-o", "json").stdout)
    assert budget["spec"].get("minAvailable") == 1 and "maxUnavailable" not in budget["spec"]
    views.put(written_view("PodDisruptionBudget", budget))  # it carries our labels
    state.budget_written_at = 0.0
    asyncio.run(protection.keep(runtime, owner, views, state, broadcasting=False))
    assert cluster.kubectl("get", "pdb", name, "-n", namespace, check=False).returncode == 0


def test_the_cluster_wide_switches_turn_deferral_and_the_budget_off(
    cluster: LocalCluster, namespace: str, runtime: Runtime
) -> None:
    obj = reconciled(cluster, namespace, runtime, restream("Youtube"))
    settings = UPGRADED.model_copy(
        update={"defer_updates_while_broadcasting": False, "protect_live_pods": False}
    )
    live = Runtime(settings=settings, kube=runtime.kube)
    live.remember(obj)
    state = live.stream(obj["metadata"]["uid"])
    state.broadcasting = True
    outcome = reconcile.reconcile(live, obj, "resume")
    assert outcome is not None and not outcome.pending
    assert sorted(outcome.rolled) == ["Youtube", "ingest"]
    assert set(images(cluster, namespace).values()) == {UPGRADED.relay_image}
    asyncio.run(
        protection.keep(
            live, owner_from_object(obj), live.views((namespace, "launch")), state, True
        )
    )
    name = naming.on_air_budget("launch")
    assert cluster.kubectl("get", "pdb", name, "-n", namespace, check=False).returncode != 0


# -- what the watches know spares reads ------------------------------------------------------


@contextlib.contextmanager
def watched(runtime: Runtime) -> Iterator[None]:
    """The operator's child watches (handlers.WATCHED) feeding ``runtime``, from an
    event loop in a thread of its own, once each has listed."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    watches = [
        Watch(runtime.kube, kind, None, selector, handlers.deliver(runtime, kind), loop)
        for kind, selector in handlers.WATCHED
    ]
    for watch in watches:
        watch.start()
    for watch in watches:
        asyncio.run_coroutine_threadsafe(watch.synced.wait(), loop).result(30)
    runtime.held_kinds = handlers.HELD_KINDS
    try:
        yield
    finally:
        for watch in watches:
            watch.stop()
        for watch in watches:
            watch.join(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


def test_a_new_livestream_reads_nothing_first_and_a_squatter_is_still_found_and_left_alone(
    cluster: LocalCluster, namespace: str, runtime: Runtime
) -> None:
    taken = naming.relay_name("launch", "Youtube")
    cluster.kubectl(
        "apply", "-f", "-", input=json.dumps(objects.squatter(taken, namespace=namespace))
    )
    # A Secret of someone else's where Twitch's inline key would go: a create answers
    # 409, and it is read, found foreign and left alone (never overwritten with the key).
    key_name = naming.inline_key_secret("launch", "Twitch")
    cluster.kubectl(
        "create", "secret", "generic", key_name, "-n", namespace, "--from-literal=key=theirs"
    )

    def stored() -> dict[str, Any]:
        items = json.loads(
            cluster.kubectl("get", "deployments,secrets", "-n", namespace, "-o", "json").stdout
        )["items"]
        return {
            i["metadata"]["name"]: i for i in items if i["metadata"]["name"] in (taken, key_name)
        }

    before = stored()
    kube = runtime.kube
    assert isinstance(kube, CountingKube)
    with watched(runtime):
        assert runtime.holder("Deployment", namespace, taken) is not None  # listed
        obj = create(cluster, namespace, restream("Youtube"), restream("Twitch"))
        runtime.remember(obj)
        with pytest.raises(reconcile.NameConflict) as raised:
            reconcile.reconcile(runtime, obj, "create")
        assert f"Deployment/{taken}" in str(raised.value)
        assert f"Secret/{key_name}" in str(raised.value)
        # Read: only the two names someone else holds (to say who); the rest of a new
        # LiveStream is created or applied without a GET.
        assert sorted(kube.reads) == sorted([f"Deployment/{taken}", f"Secret/{key_name}"])
        assert stored() == before  # both left alone

        # The squatters gone, a reconcile takes the names; then one with nothing to do
        # reads nothing the watches hold and writes nothing.
        cluster.kubectl("delete", "deployment", taken, "-n", namespace)
        cluster.kubectl("delete", "secret", key_name, "-n", namespace)
        wait_for(lambda: runtime.holder("Deployment", namespace, taken) is None, "the watch")
        reconcile.reconcile(runtime, obj, "update")
        wait_for(lambda: runtime.holder("Deployment", namespace, taken) is not None, "the relay")
        kube.reads.clear()
        again = reconcile.reconcile(runtime, obj, "resume")
        assert again is not None and again.applied == [] and again.created == []
        assert {r.split("/")[0] for r in kube.reads} == {"ConfigMap", "Secret"}

    # While broadcasting, a Deployment the watches do not know of yet is read before it
    # is written: a running pod's template never looks new, so it stays held.
    class Lagging:
        def knows(self, kind: str) -> bool:
            return True

        def holder(self, kind: str, namespace: str, name: str) -> None:
            return None

        def relays(self, namespace: str, livestream: str) -> list[str]:
            return []

    kube.reads.clear()
    owner = owner_from_object(obj)
    live = reconcile.apply_children(owner, runtime.settings, kube, hold=True, known=Lagging())
    relays = {naming.relay_name("launch", name) for name in ("Youtube", "Twitch")}
    expected = {f"Deployment/{name}" for name in {naming.ingest_name("launch"), *relays}}
    assert expected <= set(kube.reads)
    assert not [ref for ref in live.applied if ref.startswith("Deployment/")]
    assert live.rolled == []
