"""Deferred rollout: which pod templates may move while a LiveStream broadcasts."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from restream_operator import models, naming, rollout
from restream_operator.render import Owner, render_children
from restream_operator.settings import Settings

SPEC: dict[str, Any] = {
    "restreams": [
        {"name": "Youtube", "serverUrl": "rtmp://a.example.com/live2", "streamKey": "k1"},
        {"name": "Twitch", "serverUrl": "rtmps://b.example.com/app", "streamKey": "k2"},
    ]
}
INGEST = naming.ingest_name("launch")
YOUTUBE = naming.relay_name("launch", "Youtube")


def owner(spec: dict[str, Any] | None = None) -> Owner:
    return Owner("launch", "demo", "uid", models.LiveStreamSpec.model_validate(spec or SPEC))


def deployments(spec: dict[str, Any] | None = None, **settings: Any) -> dict[str, Any]:
    children = render_children(owner(spec), Settings(**settings))
    return {o["metadata"]["name"]: o for o in children.applied if o["kind"] == "Deployment"}


def on_server(obj: dict[str, Any]) -> dict[str, Any]:
    """As the API server returns it: defaults filled in, managed fields, a status."""
    out = copy.deepcopy(obj)
    out["metadata"].update(generation=3, resourceVersion="41", uid="d-uid")
    out["spec"]["template"]["spec"]["dnsPolicy"] = "ClusterFirst"
    out["spec"]["template"]["spec"]["containers"][0]["terminationMessagePath"] = "/dev/x"
    out["status"] = {"replicas": 1}
    return out


def spec_with(**changes: Any) -> dict[str, Any]:
    spec = copy.deepcopy(SPEC)
    spec.update(changes)
    return spec


def test_an_operator_update_waits_while_broadcasting_and_keeps_the_old_template() -> None:
    old = on_server(deployments()[YOUTUBE])
    new = deployments(relay_image="restream-operator/media:next")[YOUTUBE]
    plan = rollout.plan(new, old, hold=True, child="Youtube")
    assert plan.apply is not None and not plan.replaces_pod
    recorded = json.loads(old["metadata"]["annotations"][rollout.ANNOTATION_POD_TEMPLATE])
    assert plan.apply["spec"]["template"] == recorded  # what was applied, not the defaults
    assert plan.apply["spec"]["template"] != new["spec"]["template"]
    assert plan.apply["metadata"]["annotations"] == old["metadata"]["annotations"]
    assert plan.pending == rollout.Pending(
        "Youtube", YOUTUBE, ("spec.containers[relay].image",), spec_change=False
    )
    assert str(plan.pending) == "relay 'Youtube' (operator update: spec.containers[relay].image)"


def test_the_same_update_applies_at_once_when_nothing_is_broadcast() -> None:
    old = on_server(deployments()[YOUTUBE])
    new = deployments(relay_image="restream-operator/media:next")[YOUTUBE]
    plan = rollout.plan(new, old, hold=False, child="Youtube")
    assert plan.apply is new and plan.pending is None and plan.replaces_pod


def test_an_unchanged_rendering_is_applied_as_it_is_and_replaces_nothing() -> None:
    old = on_server(deployments()[YOUTUBE])
    new = deployments()[YOUTUBE]
    for hold in (True, False):
        plan = rollout.plan(new, old, hold=hold, child="Youtube")
        assert plan.apply is new and plan.pending is None and not plan.replaces_pod


def test_a_new_deployment_is_created_whatever_the_broadcast() -> None:
    new = deployments()[YOUTUBE]
    plan = rollout.plan(new, None, hold=True, child="Youtube")
    assert plan.apply is new and plan.pending is None and not plan.replaces_pod


def test_a_destinations_own_change_rolls_that_relay_at_once() -> None:
    changed = copy.deepcopy(SPEC)
    changed["restreams"][0]["serverUrl"] = "rtmp://c.example.com/live2"
    old = on_server(deployments()[YOUTUBE])
    new = deployments(changed, relay_image="restream-operator/media:next")[YOUTUBE]
    plan = rollout.plan(new, old, hold=True, child="Youtube")
    assert plan.apply is new and plan.pending is None and plan.replaces_pod


def test_a_spec_change_that_replaces_the_ingest_waits_like_an_update() -> None:
    old = on_server(deployments()[INGEST])
    new = deployments(spec_with(playback={"hls": True}))[INGEST]
    plan = rollout.plan(new, old, hold=True, child="ingest")
    assert plan.pending is not None and plan.pending.spec_change
    assert plan.apply is not None
    assert plan.apply["spec"]["template"] == json.loads(
        old["metadata"]["annotations"][rollout.ANNOTATION_POD_TEMPLATE]
    )
    assert "spec.containers[ingest].args" in plan.pending.changes
    assert str(plan.pending).startswith("ingest (spec change: ")


def test_held_deployments_still_follow_the_spec_outside_the_template() -> None:
    """Suspending while live scales the relays down at once; the hand-scaled replicas
    come back: only the pod template waits."""
    old = on_server(deployments()[YOUTUBE])
    old["spec"]["replicas"] = 0  # scaled by hand
    new = deployments(spec_with(suspend=False), relay_image="x/media:2")[YOUTUBE]
    plan = rollout.plan(new, old, hold=True, child="Youtube")
    assert plan.apply is not None and plan.apply["spec"]["replicas"] == 1
    suspended = deployments(spec_with(suspend=True), relay_image="x/media:2")[YOUTUBE]
    plan = rollout.plan(suspended, on_server(deployments()[YOUTUBE]), hold=True, child="Youtube")
    assert plan.apply is not None and plan.apply["spec"]["replicas"] == 0


def test_a_deployment_without_a_record_is_left_alone_while_broadcasting() -> None:
    """Made by an operator version that kept no record: nothing can be compared."""
    old = on_server(deployments()[YOUTUBE])
    del old["metadata"]["annotations"][rollout.ANNOTATION_POD_TEMPLATE]
    new = deployments()[YOUTUBE]
    plan = rollout.plan(new, old, hold=True, child="Youtube")
    assert plan.apply is None and plan.pending is not None
    assert rollout.plan(new, old, hold=False, child="Youtube").apply is new


@pytest.mark.parametrize(
    "spec",
    [
        spec_with(ingest={"serviceType": "LoadBalancer"}),
        spec_with(ingest={"serviceAnnotations": {"a": "b"}}),
        spec_with(suspend=True),
        {"restreams": [{**SPEC["restreams"][0], "streamKey": "another"}, SPEC["restreams"][1]]},
    ],
    ids=["service-type", "service-annotations", "suspend", "inline-key-value"],
)
def test_spec_changes_that_replace_no_pod_leave_every_template_and_input_alone(
    spec: dict[str, Any],
) -> None:
    before, after = deployments(), deployments(spec)
    for name, obj in before.items():
        assert obj["spec"]["template"] == after[name]["spec"]["template"], name
        assert obj["metadata"]["annotations"] == after[name]["metadata"]["annotations"], name


MOVING = {
    "serverUrl": lambda s: s["restreams"][0].update(serverUrl="rtmp://z.example.com/x"),
    "keyRef": lambda s: s["restreams"][0].update(
        streamKey=None, streamKeySecretRef={"name": "yt", "key": "k"}
    ),
    "tls": lambda s: s["restreams"][1].update(tls={"insecureSkipVerify": True}),
    "reconnect": lambda s: s.update(relay={"reconnect": {"maxDelaySeconds": 30}}),
    "relayResources": lambda s: s.update(relay={"resources": {"limits": {"memory": "300Mi"}}}),
    "hls": lambda s: s.update(playback={"hls": True}),
    "ingestResources": lambda s: s.update(ingest={"resources": {"limits": {"cpu": "2"}}}),
    "ingestKeyRef": lambda s: s.update(streamKeySecretRef={"name": "mine", "key": "k"}),
}


@pytest.mark.parametrize("change", sorted(MOVING))
def test_every_spec_change_that_moves_a_template_moves_its_spec_inputs(change: str) -> None:
    """The rule spec_inputs() encodes, checked against the builders: a user's change is
    never mistaken for the operator's (which would hold a destination's own change)."""
    spec = copy.deepcopy(SPEC)
    MOVING[change](spec)
    spec["restreams"] = [{k: v for k, v in r.items() if v is not None} for r in spec["restreams"]]
    before, after = deployments(), deployments(spec)
    moved = [n for n in before if before[n]["spec"]["template"] != after[n]["spec"]["template"]]
    assert moved, f"{change} moved no template: pick a change that does"
    for name in moved:
        a = before[name]["metadata"]["annotations"][rollout.ANNOTATION_SPEC_INPUTS]
        b = after[name]["metadata"]["annotations"][rollout.ANNOTATION_SPEC_INPUTS]
        assert a != b, f"{change} moved {name}'s template but not its spec inputs"


@pytest.mark.parametrize(
    "settings",
    [
        {"relay_image": "x/media:2", "ingest_image": "x/media:2"},
        {"image_pull_policy": "Always"},
        {"reconnect_max_delay_seconds": 12},
        {"pod_node_selector": {"pool": "media"}},
        {"cluster_domain": "example.internal"},
    ],
)
def test_operator_settings_move_templates_but_never_spec_inputs(settings: dict[str, Any]) -> None:
    before, after = deployments(), deployments(**settings)
    assert any(before[n]["spec"]["template"] != after[n]["spec"]["template"] for n in before)
    for name, obj in before.items():
        a = obj["metadata"]["annotations"][rollout.ANNOTATION_SPEC_INPUTS]
        assert a == after[name]["metadata"]["annotations"][rollout.ANNOTATION_SPEC_INPUTS]


def test_a_spec_written_before_a_field_existed_keeps_its_digests() -> None:
    """An upgraded operator must compute, for a spec that does not use a new field, the
    digest the previous release stamped: a different one reads as the user's own change
    of that destination and rolls its relay at once, mid-broadcast. These are the digests
    operator 0.1.0 (before renditions) stamped for SPEC."""
    digests = {
        name: obj["metadata"]["annotations"][rollout.ANNOTATION_SPEC_INPUTS]
        for name, obj in deployments().items()
    }
    assert digests == {
        INGEST: "9d32ef9ec7305290",
        YOUTUBE: "90361a7085b391ff",
        naming.relay_name("launch", "Twitch"): "5ae8fe7062e05de5",
    }


def test_the_record_is_on_the_deployment_never_on_its_pods() -> None:
    for obj in deployments().values():
        template_annotations = obj["spec"]["template"]["metadata"].get("annotations") or {}
        assert rollout.ANNOTATION_POD_TEMPLATE not in template_annotations
        assert rollout.ANNOTATION_SPEC_INPUTS not in template_annotations
        recorded = obj["metadata"]["annotations"][rollout.ANNOTATION_POD_TEMPLATE]
        assert json.loads(recorded) == obj["spec"]["template"]


def test_changed_paths_name_containers_and_env_by_name() -> None:
    old = {"spec": {"containers": [{"name": "relay", "image": "a", "env": [{"name": "X"}]}]}}
    new = {
        "spec": {"containers": [{"name": "relay", "image": "b", "env": [{"name": "Y"}]}]},
        "metadata": {"labels": {"a": "b"}},
    }
    assert rollout.changed_paths(old, new) == [
        "metadata",
        "spec.containers[relay].env[X]",
        "spec.containers[relay].env[Y]",
        "spec.containers[relay].image",
    ]
