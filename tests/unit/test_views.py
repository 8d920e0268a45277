"""Views of children, built from objects as the API server delivers them."""

from __future__ import annotations

from typing import Any

from restream_operator import naming
from restream_operator.views import (
    ChildViews,
    DeploymentView,
    PodView,
    ServiceView,
    Written,
    deployment_view,
    fingerprint,
    key_of,
    live_pod,
    pod_view,
    service_view,
    written_view,
)

YT = naming.restream_slug("Youtube")


def deployment(generation: int, observed: int, updated: int, available: int) -> dict[str, Any]:
    return {
        "metadata": {"name": "launch-ingest", "generation": generation},
        "spec": {"replicas": 1},
        "status": {
            "observedGeneration": observed,
            "updatedReplicas": updated,
            "availableReplicas": available,
        },
    }


def test_a_deployment_is_rolled_out_once_the_controller_saw_its_spec_and_updated_it() -> None:
    assert deployment_view(deployment(2, 2, 1, 1)) == DeploymentView("launch-ingest", 1, True)
    # Available, but the controller has not seen generation 2 yet: still rolling.
    assert deployment_view(deployment(2, 1, 1, 1)).rolled_out is False
    assert deployment_view(deployment(2, 2, 0, 1)).rolled_out is False
    new = {"metadata": {"name": "x", "generation": 1}, "spec": {}}
    assert deployment_view(new) == DeploymentView("x", 0, False)


def test_a_pod_view_has_its_group_readiness_restarts_and_why_it_waits() -> None:
    pod = {
        "metadata": {
            "name": "launch-relay-x-abc",
            "labels": {naming.LABEL_COMPONENT: naming.COMPONENT_RELAY, naming.LABEL_RESTREAM: YT},
            "deletionTimestamp": "2026-01-01T00:00:00Z",
        },
        "status": {
            "phase": "Running",
            "podIP": "10.244.0.7",
            "conditions": [{"type": "Ready", "status": "False"}],
            "containerStatuses": [
                {"restartCount": 2, "state": {"running": {}}},
                {
                    "restartCount": 1,
                    "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off"}},
                },
            ],
        },
    }
    assert pod_view(pod) == PodView(
        name="launch-relay-x-abc",
        group=YT,
        ip="10.244.0.7",
        phase="Running",
        ready=False,
        restarts=3,
        waiting_reason="CrashLoopBackOff",
        waiting_message="back-off",
        deleting=True,
    )
    ingest = {"metadata": {"name": "i", "labels": {naming.LABEL_COMPONENT: "ingest"}}}
    assert pod_view(ingest) == PodView("i", "ingest")


def test_the_service_view_reports_where_encoders_reach_the_ingest() -> None:
    lb = {
        "metadata": {"name": "launch-ingest"},
        "spec": {"type": "LoadBalancer", "ports": [{"name": "rtmp", "nodePort": 31935}]},
        "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.9"}]}},
    }
    assert service_view(lb) == ServiceView("launch-ingest", "LoadBalancer", "203.0.113.9", 31935)
    plain = service_view({"metadata": {"name": "s"}, "spec": {}})
    assert plain == ServiceView("s", "ClusterIP", None, None)


def test_key_of_reads_the_livestream_label_and_ignores_unlabelled_objects() -> None:
    labelled = {"metadata": {"namespace": "demo", "labels": {naming.LABEL_LIVESTREAM: "launch"}}}
    assert key_of(labelled) == ("demo", "launch")
    assert key_of({"metadata": {"namespace": "demo"}}) is None


def test_live_pod_is_the_newest_that_is_not_being_deleted() -> None:
    old, new = PodView("old"), PodView("new")
    assert live_pod([old, new]) == new
    assert live_pod([old, PodView("going", deleting=True)]) == old
    assert live_pod([PodView("going", deleting=True)]) is None


def test_child_views_group_pods_and_drop_only_what_was_named() -> None:
    views = ChildViews()
    views.put(PodView("a", "ingest"))
    views.put(PodView("b", YT))
    views.put(PodView("c", YT))
    views.put(ServiceView("launch-ingest"))
    assert {g: [p.name for p in ps] for g, ps in views.pods_by_group().items()} == {
        "ingest": ["a"],
        YT: ["b", "c"],
    }
    views.drop("Service", "some-other-service")
    assert views.service is not None
    views.drop("Service", "launch-ingest")
    for name in "abc":
        views.drop("Pod", name)
    assert views.empty()


def managed(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "Deployment", "metadata": {"name": "d", "managedFields": list(entries)}}


OURS = {"manager": "restream-operator", "operation": "Apply", "time": "2026-01-01T00:00:00Z"}
CONTROLLER_STATUS = {
    "manager": "kube-controller-manager",
    "operation": "Update",
    "subresource": "status",
    "time": "2026-01-01T00:00:09Z",
    "fieldsV1": {"f:status": {"f:replicas": {}}},
}


def test_the_fingerprint_ignores_status_writers_and_moves_with_any_other_writer() -> None:
    base = fingerprint(managed(OURS))
    assert fingerprint(managed(OURS, CONTROLLER_STATUS)) == base
    scaled = {
        "manager": "kubectl",
        "operation": "Update",
        "subresource": "scale",
        "time": "2026-01-01T00:00:05Z",
        "fieldsV1": {"f:spec": {"f:replicas": {}}},
    }
    assert fingerprint(managed(OURS, scaled)) != base
    # our own field set shrinking (someone removed a label we set) moves it too
    assert fingerprint(managed({**OURS, "fieldsV1": {"f:metadata": {}}})) != base
    assert written_view("Deployment", managed(OURS)) == Written("Deployment", "d", base)
