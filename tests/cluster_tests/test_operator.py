"""The operator against the real control plane: children, isolation, status, lifecycle."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import config

from hack.localcluster import livestreams
from hack.localcluster.controlplane import LocalCluster
from hack.localcluster.livestreams import condition
from hack.localcluster.operator_process import OperatorProcess, wait_for_webhooks
from hack.waiting import wait_for
from restream_operator import models, naming
from restream_operator.kube import Kube
from restream_operator.watches import Watch
from tests.cluster_tests import objects

pytestmark = pytest.mark.cluster

CHECKOUT = Path(__file__).resolve().parents[2]
EXAMPLE = yaml.safe_load((CHECKOUT / "examples" / "api-video-compatible.yaml").read_text())
INLINE_KEYS = [r["streamKey"] for r in EXAMPLE["spec"]["restreams"]]
CHILD_KINDS = "deployments,services,configmaps,secrets,networkpolicies"


def get(cluster: LocalCluster, what: str, namespace: str, *args: str) -> dict[str, Any]:
    out = cluster.kubectl("get", what, "-n", namespace, "-o", "json", *args)
    return dict(json.loads(out.stdout))


def apply(cluster: LocalCluster, namespace: str, doc: dict[str, Any]) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(doc))


def livestream(
    name: str = "launch", restreams: list[dict[str, Any]] | None = None, **spec: Any
) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(json.dumps(EXAMPLE))
    doc["metadata"] = {"name": name}
    if restreams is not None:
        doc["spec"]["restreams"] = restreams
    doc["spec"].update(spec)
    return doc


def children(
    cluster: LocalCluster, namespace: str, name: str = "launch"
) -> dict[str, dict[str, Any]]:
    items = get(cluster, CHILD_KINDS, namespace, "-l", f"{naming.LABEL_LIVESTREAM}={name}")["items"]
    return {f"{o['kind']}/{o['metadata']['name']}": o for o in items}


def status(cluster: LocalCluster, namespace: str, name: str = "launch") -> dict[str, Any]:
    return livestreams.status(cluster, namespace, name)


def ready(cluster: LocalCluster, namespace: str, name: str = "launch") -> bool:
    st = status(cluster, namespace, name)
    return all(condition(st, c) == "True" for c in ("IngestReady", "RestreamsReady"))


def relay(name: str) -> str:
    return f"Deployment/{naming.relay_name('launch', name)}"


def fingerprint(cluster: LocalCluster, namespace: str) -> dict[str, str]:
    """What must not move for an untouched destination: each object's resourceVersion
    (Deployments: generation, since kwok writes their status) and each pod's name."""
    out = {}
    for ref, obj in children(cluster, namespace).items():
        meta = obj["metadata"]
        out[ref] = str(
            meta["generation"] if obj["kind"] == "Deployment" else meta["resourceVersion"]
        )
    for pod in get(cluster, "pods", namespace, "-l", f"{naming.LABEL_LIVESTREAM}=launch")["items"]:
        if pod["metadata"].get("deletionTimestamp") is None:
            group = pod["metadata"]["labels"].get(naming.LABEL_RESTREAM, "ingest")
            out[f"pod/{group}"] = pod["metadata"]["name"]
    return out


def test_example_creates_owned_children_and_becomes_ready(
    cluster: LocalCluster, namespace: str, operator: OperatorProcess
) -> None:
    cluster.kubectl(
        "apply", "-n", namespace, "-f", str(CHECKOUT / "examples" / "api-video-compatible.yaml")
    )
    wait_for(lambda: ready(cluster, namespace), "IngestReady and RestreamsReady", timeout=60)

    kids = children(cluster, namespace)
    expected = {
        "ConfigMap/launch-ingest",
        "Deployment/launch-ingest",
        "Service/launch-ingest",
        "Service/launch-ingest-internal",
        "NetworkPolicy/launch-ingest",
        "NetworkPolicy/launch-relays",
        # Rendered whether or not a rendition is in use, like the relays' policy: an
        # encoder pod is never without one.
        "NetworkPolicy/launch-encoders",
        "Secret/launch-stream-key",
        "Secret/launch-play-token",
        relay("Youtube"),
        relay("Twitch"),
        f"Secret/{naming.inline_key_secret('launch', 'Youtube')}",
        f"Secret/{naming.inline_key_secret('launch', 'Twitch')}",
    }
    assert set(kids) == expected
    uid = get(cluster, "livestream/launch", namespace)["metadata"]["uid"]
    for ref, obj in kids.items():
        owners = obj["metadata"]["ownerReferences"]
        assert owners == [
            {
                "apiVersion": "restream.dev/v1alpha1",
                "kind": "LiveStream",
                "name": "launch",
                "uid": uid,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ], ref
        assert obj["metadata"]["labels"][naming.LABEL_MANAGED_BY] == "restream-operator"
    generated = base64.b64decode(kids["Secret/launch-stream-key"]["data"]["streamKey"]).decode()
    assert len(generated) >= 22  # >= 128 bits of randomness, URL-safe

    st = status(cluster, namespace)
    assert st["observedGeneration"] == 1
    assert (
        st["ingest"]["rtmpUrl"] == f"rtmp://launch-ingest.{namespace}.svc.cluster.local:1935/live"
    )
    assert st["ingest"]["streamKeySecret"] == "launch-stream-key"
    assert [r["name"] for r in st["restreams"]] == ["Youtube", "Twitch"]
    # kwok's pods are Ready but no agent answers in them: healthy by readiness, Live
    # unknown (the media and node tiers run real agents)
    assert [r["state"] for r in st["restreams"]] == ["Unknown", "Unknown"]
    printed = cluster.kubectl("get", "livestreams", "-n", namespace).stdout
    assert "READY" in printed and "LIVE" in printed and "0/2" in printed
    assert printed.splitlines()[1].split()[1] == "True", printed
    # Deleting a LiveStream (or its namespace) never waits for the operator.
    assert not get(cluster, "livestream/launch", namespace)["metadata"].get("finalizers")
    # Setting up is in the status, not in Events (Pending, then Unknown here).
    events = get(cluster, "events", namespace, "--field-selector", "involvedObject.kind=LiveStream")
    assert not [e["reason"] for e in events["items"] if e["reason"].startswith("Restream")]


def test_each_destination_change_touches_only_that_destination(
    cluster: LocalCluster, namespace: str, operator: OperatorProcess
) -> None:
    restreams = json.loads(json.dumps(EXAMPLE["spec"]["restreams"]))
    apply(cluster, namespace, livestream(restreams=restreams))
    wait_for(lambda: ready(cluster, namespace), "the LiveStream to be ready")

    def change(new_restreams: list[dict[str, Any]], touched: set[str]) -> dict[str, str]:
        before = fingerprint(cluster, namespace)
        apply(cluster, namespace, livestream(restreams=new_restreams))
        generation = get(cluster, "livestream/launch", namespace)["metadata"]["generation"]
        wait_for(
            lambda: status(cluster, namespace).get("observedGeneration") == generation,
            "the change to be reconciled",
        )
        wait_for(lambda: ready(cluster, namespace), "the LiveStream to be ready again")
        time.sleep(1.5)  # let the controllers settle, then compare
        after = fingerprint(cluster, namespace)
        for ref in before.keys() & after.keys():
            if not any(t in ref for t in touched):
                assert before[ref] == after[ref], f"{ref} changed although its destination did not"
        return after

    def own(name: str) -> set[str]:
        """What names a destination's objects: its relay's name (the Deployment, its
        inline-key Secret) and its slug (its pod, in the fingerprint)."""
        return {naming.relay_name("launch", name), naming.restream_slug(name)}

    twitch = own("Twitch")
    # edit one destination's URL: only its relay changes
    restreams[1]["serverUrl"] = "rtmp://other.example.net/app"
    after = change(restreams, twitch)
    assert after[relay("Twitch")] == "2"
    assert {"NetworkPolicy/launch-ingest", "NetworkPolicy/launch-relays"} <= after.keys()
    # add one
    restreams.append(
        {
            "name": "My Facebook",
            "serverUrl": "rtmps://f.example.com:443/rtmp",
            "streamKey": "fb-key-1",
        }
    )
    after = change(restreams, own("My Facebook"))
    assert relay("My Facebook") in after
    # disable one: its relay and inline-key Secret go, the entry stays
    restreams[1]["enabled"] = False
    after = change(restreams, twitch)
    assert relay("Twitch") not in after
    assert f"Secret/{naming.inline_key_secret('launch', 'Twitch')}" not in after
    assert {r["name"]: r["state"] for r in status(cluster, namespace)["restreams"]}[
        "Twitch"
    ] == "Disabled"
    # remove one
    del restreams[2]
    after = change(restreams, own("My Facebook"))
    assert relay("My Facebook") not in after
    assert [r["name"] for r in status(cluster, namespace)["restreams"]] == ["Youtube", "Twitch"]


def test_suspend_scales_relays_to_zero(
    cluster: LocalCluster, namespace: str, operator: OperatorProcess
) -> None:
    apply(cluster, namespace, livestream(suspend=True))
    wait_for(
        lambda: (
            condition(status(cluster, namespace), "RestreamsReady") == "False"
            and relay("Youtube") in children(cluster, namespace)
        ),
        "the suspended LiveStream",
    )
    kids = children(cluster, namespace)
    assert kids[relay("Youtube")]["spec"]["replicas"] == 0
    assert kids["Deployment/launch-ingest"]["spec"]["replicas"] == 1
    reason = next(
        c["reason"]
        for c in status(cluster, namespace)["conditions"]
        if c["type"] == "RestreamsReady"
    )
    assert reason == "Suspended"


def test_deleting_the_livestream_removes_every_child(
    cluster: LocalCluster, namespace: str, operator: OperatorProcess
) -> None:
    apply(cluster, namespace, livestream())
    wait_for(lambda: ready(cluster, namespace), "the LiveStream to be ready")
    cluster.kubectl("delete", "livestream", "launch", "-n", namespace, "--timeout=60s")
    wait_for(lambda: not children(cluster, namespace), "the garbage collector to remove children")
    pods = get(cluster, "pods", namespace, "-l", f"{naming.LABEL_LIVESTREAM}=launch")["items"]
    wait_for(
        lambda: (
            not get(cluster, "pods", namespace, "-l", f"{naming.LABEL_LIVESTREAM}=launch")["items"]
        ),
        f"pods to go (had {len(pods)})",
    )


def test_a_deleted_relay_is_recreated(
    cluster: LocalCluster, namespace: str, operator: OperatorProcess
) -> None:
    apply(cluster, namespace, livestream())
    wait_for(lambda: ready(cluster, namespace), "the LiveStream to be ready")
    name = naming.relay_name("launch", "Youtube")
    old_uid = children(cluster, namespace)[relay("Youtube")]["metadata"]["uid"]
    cluster.kubectl("delete", "deployment", name, "-n", namespace)
    wait_for(
        lambda: (
            (d := children(cluster, namespace).get(relay("Youtube"))) is not None
            and d["metadata"]["uid"] != old_uid
        ),
        "the operator to recreate the relay",
        timeout=40,
    )


def test_operator_restart_mid_change_converges_without_duplicates(
    cluster: LocalCluster, namespace: str, operator: OperatorProcess
) -> None:
    apply(cluster, namespace, livestream())
    wait_for(lambda: ready(cluster, namespace), "the LiveStream to be ready")
    operator.stop()
    try:
        restreams = json.loads(json.dumps(EXAMPLE["spec"]["restreams"]))
        restreams.append(
            {"name": "Kick", "serverUrl": "rtmps://k.example.com/app", "streamKey": "kk"}
        )
        apply(cluster, namespace, livestream(restreams=restreams))
    finally:
        operator.start()
        wait_for_webhooks(cluster)
    wait_for(lambda: relay("Kick") in children(cluster, namespace), "the change after the restart")
    wait_for(
        lambda: (
            ready(cluster, namespace) and status(cluster, namespace).get("observedGeneration") == 2
        ),
        "convergence",
    )
    kids = children(cluster, namespace)
    assert sum(1 for ref in kids if ref.startswith("Deployment/")) == 4
    assert sum(1 for ref in kids if ref.startswith("Service/")) == 2
    replicasets = get(cluster, "replicasets", namespace, "-l", f"{naming.LABEL_LIVESTREAM}=launch")[
        "items"
    ]
    assert len(replicasets) == 4


def test_no_status_write_while_nothing_changes(
    cluster: LocalCluster, namespace: str, operator: OperatorProcess
) -> None:
    apply(cluster, namespace, livestream())
    wait_for(lambda: ready(cluster, namespace), "the LiveStream to be ready")
    time.sleep(3)  # let the first status writes land
    before = get(cluster, "livestream/launch", namespace)["metadata"]["resourceVersion"]
    time.sleep(30)  # 30 polls of every agent at 1 s
    after = get(cluster, "livestream/launch", namespace)["metadata"]["resourceVersion"]
    assert before == after, "the LiveStream was written while nothing changed"


YT_BY_REF = {
    "name": "Youtube",
    "serverUrl": "rtmp://a.example.com/live2",
    "streamKeySecretRef": {"name": "yt", "key": "key"},
}
# Who waits for a missing Secret decides which condition says so: a relay
# (RestreamsReady) or the ingest (IngestReady). The second case is a restream whose name
# is the ingest's field path: it is still a relay's Secret, not the ingest's.
MISSING_SECRET_CASES: dict[str, tuple[dict[str, Any], str, str, str, str]] = {
    "relay": ({"restreams": [YT_BY_REF]}, "yt", "key", "RestreamsReady", "IngestReady"),
    "relay named like the ingest field": (
        {"restreams": [{**YT_BY_REF, "name": "spec.streamKeySecretRef"}]},
        "yt",
        "key",
        "RestreamsReady",
        "IngestReady",
    ),
    "ingest": (
        {"restreams": [YT_BY_REF], "streamKeySecretRef": {"name": "ingest-key", "key": "k"}},
        "ingest-key",
        "k",
        "IngestReady",
        "RestreamsReady",
    ),
}


@pytest.mark.parametrize("case", list(MISSING_SECRET_CASES))
def test_referenced_secret_missing_is_a_condition_until_it_exists(
    cluster: LocalCluster, namespace: str, operator: OperatorProcess, case: str
) -> None:
    spec, secret, key, waiting, other = MISSING_SECRET_CASES[case]
    if secret != "yt":
        cluster.kubectl(
            "create", "secret", "generic", "yt", "-n", namespace, "--from-literal=key=a"
        )
    spec = dict(spec)
    apply(cluster, namespace, livestream(restreams=spec.pop("restreams"), **spec))

    def reason(type_: str) -> str | None:
        st = status(cluster, namespace)
        return next((c["reason"] for c in st.get("conditions", []) if c["type"] == type_), None)

    wait_for(lambda: reason(waiting) == "SecretMissing", f"the SecretMissing reason of {waiting}")
    # kstatus: it cannot proceed without someone's help (Flux and Argo CD say Failed).
    assert (condition(status(cluster, namespace), "Stalled"), reason("Stalled")) == (
        "True",
        "SecretMissing",
    )
    assert condition(status(cluster, namespace), "Reconciling") == "False"
    assert livestreams.kstatus(cluster, livestreams.get(cluster, namespace, "launch")) == "Failed"
    message = next(
        c["message"] for c in status(cluster, namespace)["conditions"] if c["type"] == waiting
    )
    assert f"'{secret}'" in message
    assert reason(other) != "SecretMissing", f"{other} blames the Secret {waiting} waits for"
    events = get(
        cluster, "events", namespace, "--field-selector", "involvedObject.kind=LiveStream"
    )["items"]
    assert any(e["reason"] == "SecretMissing" for e in events)
    cluster.kubectl(
        "create", "secret", "generic", secret, "-n", namespace, f"--from-literal={key}=abc"
    )
    healthy = "AllHealthy" if waiting == "RestreamsReady" else "Available"
    wait_for(lambda: reason(waiting) == healthy, "the condition to clear once the Secret exists")
    wait_for(lambda: reason("Stalled") == "Proceeding", "Stalled to clear once the Secret exists")


def test_no_key_literal_in_pods_status_events_or_logs(
    cluster: LocalCluster, namespace: str, operator: OperatorProcess
) -> None:
    apply(cluster, namespace, livestream())
    wait_for(lambda: ready(cluster, namespace), "the LiveStream to be ready")
    ingest_key = base64.b64decode(
        children(cluster, namespace)["Secret/launch-stream-key"]["data"]["streamKey"]
    ).decode()
    secrets = [*INLINE_KEYS, ingest_key]
    texts = {
        "pods": cluster.kubectl(
            "get", "pods,deployments,replicasets", "-n", namespace, "-o", "yaml"
        ).stdout,
        "livestream": cluster.kubectl(
            "get", "livestream", "launch", "-n", namespace, "-o", "jsonpath={.status}"
        ).stdout,
        "events": cluster.kubectl("get", "events", "-n", namespace, "-o", "yaml").stdout,
        "operator log": operator.logs(),
    }
    for where, text in texts.items():
        for secret in secrets:
            assert secret not in text, f"a stream key appears in {where}"
            assert base64.b64encode(secret.encode()).decode() not in text, (
                f"a base64 key in {where}"
            )


def test_more_destinations_than_the_operator_allows_is_reported_not_half_applied(
    cluster: LocalCluster, namespace: str, operator: OperatorProcess
) -> None:
    restreams = [
        {"name": f"Dest {i}", "serverUrl": f"rtmp://d{i}.example.com/app", "streamKey": f"k{i}"}
        for i in range(6)
    ]
    # Admission refuses this; stored while the webhook was down, the operator still must.
    operator.stop()
    try:
        apply(cluster, namespace, livestream(restreams=restreams))
    finally:
        operator.start()
        wait_for_webhooks(cluster)

    def ready_condition() -> dict[str, Any] | None:
        st = status(cluster, namespace)
        return next((c for c in st.get("conditions") or [] if c["type"] == "Ready"), None)

    wait_for(
        lambda: (ready_condition() or {}).get("reason") == "InvalidSpec",
        "the InvalidSpec condition",
    )
    cond = ready_condition() or {}
    assert "more than this operator allows (5)" in cond["message"]
    assert "RESTREAM_MAX_RESTREAMS" in cond["message"]
    assert not children(cluster, namespace), "nothing is applied for a spec over the limit"


def test_a_spec_stored_without_the_webhook_is_held_to_the_rules_at_reconcile(
    cluster: LocalCluster, namespace: str, operator: OperatorProcess
) -> None:
    # A destination inside the cluster: CEL cannot tell, the webhook refuses it, and an
    # object stored while the webhook was down must not be applied either.
    private = {"name": "Inside", "serverUrl": "rtmp://10.0.0.7/live", "streamKey": "k"}
    operator.stop()
    try:
        apply(cluster, namespace, livestream(restreams=[private]))
    finally:
        operator.start()
        wait_for_webhooks(cluster)

    def ready_condition() -> dict[str, Any]:
        st = status(cluster, namespace)
        return next((c for c in st.get("conditions") or [] if c["type"] == "Ready"), {})

    wait_for(lambda: ready_condition().get("reason") == "InvalidSpec", "the InvalidSpec reason")
    message = ready_condition()["message"]
    assert 'spec.restreams[0] ("Inside").serverUrl' in message and "10.0.0.7" in message
    assert "private address" in message
    assert not children(cluster, namespace), "nothing of an invalid spec is applied"
    events = get(cluster, "events", namespace, "--field-selector", "involvedObject.name=launch")
    assert [e["reason"] for e in events["items"]].count("InvalidSpec") == 1

    fixed = {**private, "serverUrl": "rtmp://a.example.com/live"}
    apply(cluster, namespace, livestream(restreams=[fixed]))
    wait_for(lambda: ready(cluster, namespace), "the fixed LiveStream to be ready")


def test_pods_pass_the_restricted_pod_security_standard(
    cluster: LocalCluster, namespace: str, operator: OperatorProcess
) -> None:
    # The apiserver's own PodSecurity admission refuses any pod that is not "restricted".
    cluster.kubectl(
        "label",
        "namespace",
        namespace,
        "pod-security.kubernetes.io/enforce=restricted",
        "pod-security.kubernetes.io/enforce-version=latest",
    )
    apply(cluster, namespace, livestream())
    wait_for(lambda: ready(cluster, namespace), "the LiveStream's pods under restricted PSS")
    pods = get(cluster, "pods", namespace, "-l", f"{naming.LABEL_LIVESTREAM}=launch")["items"]
    assert len(pods) == 3
    events = get(cluster, "events", namespace)["items"]
    assert not [e for e in events if "violates PodSecurity" in e.get("message", "")]


def inline(name: str, key: str) -> dict[str, Any]:
    return {"name": name, "serverUrl": "rtmp://a.example.com/live2", "streamKey": key}


def test_livestreams_whose_relay_names_read_alike_get_their_own_children(
    cluster: LocalCluster, namespace: str, operator: OperatorProcess
) -> None:
    # Before relay names carried a hash of the (LiveStream, restream) pair, these two
    # rendered one Deployment and one key Secret, and each reconcile overwrote the other.
    apply(cluster, namespace, livestream("p", restreams=[inline("x-relay-y", "key-of-p")]))
    apply(cluster, namespace, livestream("p-relay-x", restreams=[inline("y", "key-of-q")]))
    for ls, restream, key in (("p", "x-relay-y", "key-of-p"), ("p-relay-x", "y", "key-of-q")):
        wait_for(functools.partial(ready, cluster, namespace, ls), f"LiveStream {ls} to be ready")
        uid = get(cluster, f"livestream/{ls}", namespace)["metadata"]["uid"]
        relay = get(cluster, f"deployment/{naming.relay_name(ls, restream)}", namespace)
        assert [r["uid"] for r in relay["metadata"]["ownerReferences"]] == [uid]
        secret = get(cluster, f"secret/{naming.inline_key_secret(ls, restream)}", namespace)
        assert base64.b64decode(secret["data"]["streamKey"]).decode() == key


def test_a_name_another_object_holds_is_a_name_conflict_and_that_object_is_left_alone(
    cluster: LocalCluster, namespace: str, operator: OperatorProcess
) -> None:
    apply(cluster, namespace, livestream("other", restreams=[inline("Twitch", "k")]))
    wait_for(lambda: ready(cluster, namespace, "other"), "LiveStream other to be ready")
    other_uid = get(cluster, "livestream/other", namespace)["metadata"]["uid"]
    # A Deployment that holds the name launch's Youtube relay needs, controlled by "other".
    taken = naming.relay_name("launch", "Youtube")
    owner = {
        "apiVersion": "restream.dev/v1alpha1",
        "kind": "LiveStream",
        "name": "other",
        "uid": other_uid,
        "controller": True,
    }
    squatter = objects.squatter(taken, ownerReferences=[owner])
    apply(cluster, namespace, squatter)
    before = get(cluster, f"deployment/{taken}", namespace)
    apply(
        cluster, namespace, livestream(restreams=[inline("Youtube", "k1"), inline("Twitch", "k2")])
    )

    def ready_condition() -> dict[str, Any]:
        st = status(cluster, namespace)
        return next((c for c in st.get("conditions") or [] if c["type"] == "Ready"), {})

    wait_for(lambda: ready_condition().get("reason") == "NameConflict", "the NameConflict reason")
    message = ready_condition()["message"]
    assert f"Deployment/{taken}" in message and f"LiveStream {namespace}/other" in message
    after = get(cluster, f"deployment/{taken}", namespace)
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert after["spec"]["template"]["spec"]["containers"][0]["image"] == "squatter:1"
    # Everything else of launch is applied: its ingest and its other relay.
    mine = children(cluster, namespace)
    assert f"Deployment/{naming.ingest_name('launch')}" in mine
    assert relay("Twitch") in mine
    events = get(cluster, "events", namespace, "--field-selector", "involvedObject.name=launch")
    assert "NameConflict" in {e["reason"] for e in events["items"]}
    # One poster: every Event on a LiveStream comes from the operator, under its name.
    assert {(e["reportingComponent"], e["source"]["component"]) for e in events["items"]} == {
        ("restream-operator", "restream-operator")
    }

    # Once the name is free, the repair takes it within seconds.
    cluster.kubectl("delete", "deployment", taken, "-n", namespace)
    wait_for(lambda: ready(cluster, namespace), "launch to be ready once the name is free")
    assert ready_condition()["reason"] == "Ready"


def test_a_destination_moving_its_key_into_a_secret_loses_the_inline_copy(
    cluster: LocalCluster, namespace: str, operator: OperatorProcess
) -> None:
    apply(cluster, namespace, livestream(restreams=[inline("Youtube", "k1")]))
    wait_for(lambda: ready(cluster, namespace), "the LiveStream to be ready")
    copy = f"Secret/{naming.inline_key_secret('launch', 'Youtube')}"
    assert copy in children(cluster, namespace)
    cluster.kubectl("create", "secret", "generic", "yt", "-n", namespace, "--from-literal=key=k1")
    moved = {**YT_BY_REF, "serverUrl": "rtmp://a.example.com/live2"}
    apply(cluster, namespace, livestream(restreams=[moved]))
    wait_for(lambda: copy not in children(cluster, namespace), "the inline copy to be deleted")
    assert relay("Youtube") in children(cluster, namespace)


# -- operating while live (issue 13): drift, restarts, kstatus ------------------------------


def deployment(cluster: LocalCluster, namespace: str, name: str) -> dict[str, Any]:
    return get(cluster, f"deployment/{name}", namespace)


def args_of(d: dict[str, Any]) -> list[str]:
    return list(d["spec"]["template"]["spec"]["containers"][0]["args"])


def timed(condition_: Any, what: str, timeout: float = 15) -> float:
    t0 = time.monotonic()
    wait_for(condition_, what, timeout=timeout, every=0.2)
    return round(time.monotonic() - t0, 2)


def test_children_changed_or_deleted_by_someone_else_are_restored_within_15s(
    cluster: LocalCluster, namespace: str, operator: OperatorProcess
) -> None:
    apply(cluster, namespace, livestream())
    wait_for(lambda: ready(cluster, namespace), "the LiveStream to be ready")
    youtube = naming.relay_name("launch", "Youtube")
    twitch = naming.relay_name("launch", "Twitch")
    original = args_of(deployment(cluster, namespace, twitch))
    policy = get(cluster, f"networkpolicy/{naming.ingest_name('launch')}", namespace)
    times = {}

    cluster.kubectl("scale", "deployment", youtube, "-n", namespace, "--replicas=0")
    times["scaled_to_0"] = timed(
        lambda: deployment(cluster, namespace, youtube)["spec"]["replicas"] == 1,
        "the relay scaled back to 1",
    )
    livestreams.edit_relay_arg(
        cluster, namespace, twitch, "--destination", "rtmp://elsewhere.example.com/app"
    )
    times["args_edited"] = timed(
        lambda: args_of(deployment(cluster, namespace, twitch)) == original,
        "the relay's args restored",
    )
    internal = naming.ingest_internal_name("launch")
    cluster.kubectl("delete", "service", internal, "-n", namespace)
    times["service_deleted"] = timed(
        lambda: cluster.kubectl("get", "service", internal, "-n", namespace, check=False)
        .returncode == 0,
        "the internal Service recreated",
    )  # fmt: skip
    cluster.kubectl(
        "patch", "networkpolicy", naming.ingest_name("launch"), "-n", namespace,
        "--type=json", "-p", json.dumps([{"op": "remove", "path": "/spec/ingress/0"}]),
    )  # fmt: skip
    times["policy_edited"] = timed(
        lambda: (
            get(cluster, f"networkpolicy/{naming.ingest_name('launch')}", namespace)["spec"]
            == policy["spec"]
        ),
        "the NetworkPolicy restored",
    )
    relays_policy = naming.relays_network_policy("launch")
    cluster.kubectl("delete", "networkpolicy", relays_policy, "-n", namespace)
    times["policy_deleted"] = timed(
        lambda: cluster.kubectl("get", "networkpolicy", relays_policy, "-n", namespace,
                                check=False).returncode == 0,
        "the relays' NetworkPolicy recreated",
    )  # fmt: skip
    print(f"\nFIGURE drift_repair_s {json.dumps(times)}")


def test_an_operator_restart_replaces_no_pod_and_rewrites_no_deployment(
    cluster: LocalCluster, namespace: str, operator: OperatorProcess
) -> None:
    apply(cluster, namespace, livestream())
    wait_for(lambda: ready(cluster, namespace), "the LiveStream to be ready")
    time.sleep(2)  # the Deployment controller's last status writes after rollout
    before = fingerprint(cluster, namespace)
    operator.stop()
    operator.start()
    wait_for_webhooks(cluster)
    # The restarted operator resumes every LiveStream (a reconcile) and polls it.
    wait_for(
        lambda: f"{namespace}/launch: resume: reconciled" in operator.logs(),
        "the resumed reconcile",
        timeout=60,
    )
    time.sleep(3)
    assert fingerprint(cluster, namespace) == before


@contextlib.contextmanager
def watching(cluster: LocalCluster, namespace: str) -> Iterator[list[dict[str, Any]]]:
    """The LiveStreams of ``namespace`` as each watch event delivers them, from a watch
    that has listed (so sees every later write) before the block runs."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    kube = Kube(config.new_client_from_config(config_file=str(cluster.kubeconfig)))  # type: ignore[no-untyped-call]
    seen: list[dict[str, Any]] = []
    watch = Watch(kube, models.KIND, namespace, {}, lambda _, obj: seen.append(obj), loop)
    watch.start()
    try:
        asyncio.run_coroutine_threadsafe(watch.synced.wait(), loop).result(30)
        yield seen
        time.sleep(0.5)  # the last events on their way
    finally:
        watch.stop()
        watch.join(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
        kube.api.close()  # type: ignore[no-untyped-call]


def test_kstatus_conditions_say_reconciling_then_current(
    cluster: LocalCluster, namespace: str, operator: OperatorProcess
) -> None:
    """What Flux's `wait`, Argo CD and `kubectl wait` read: observedGeneration, then
    Reconciling until the children are up, Stalled never, Ready at the end; and what
    kstatus itself (the library Flux uses) makes of it: InProgress, then Current."""
    names = ("Ready", "Reconciling", "Stalled")

    def done() -> bool:
        st = status(cluster, namespace)
        return (
            st.get("observedGeneration") == 1
            and condition(st, "Ready") == "True"
            and condition(st, "Reconciling") == "False"
        )

    # Every status write, from a watch open before the LiveStream exists: the first one
    # and Ready can come a fraction of a second apart (Ready is written the moment the
    # last child is up), too close for polling to see both.
    with watching(cluster, namespace) as written:
        apply(cluster, namespace, livestream())
        wait_for(done, "Ready True and Reconciling False", timeout=60, every=0.1)
    seen = [
        (*(condition(obj["status"], c) for c in names), livestreams.kstatus(cluster, obj))
        for obj in written
        if obj.get("status")
    ]
    assert seen[0][0] == "False", f"the first status written must not say Ready: {seen}"
    assert seen[0][3] == "InProgress", seen
    assert seen[-1][3] == "Current", seen
    assert all(s[2] == "False" for s in seen), seen
    assert all(s[3] == "InProgress" for s in seen if s[1] == "True"), seen
    assert condition(status(cluster, namespace), "UpdatePending") == "False"
