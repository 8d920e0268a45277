"""The operator's few API calls (kube.py), against the real apiserver."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import config

from hack.localcluster.controlplane import LocalCluster
from restream_operator import naming
from restream_operator.kube import FIELD_MANAGER, Kube, KubeError

pytestmark = pytest.mark.cluster


@pytest.fixture
def kube(cluster: LocalCluster) -> Kube:
    api = config.new_client_from_config(config_file=str(cluster.kubeconfig))  # type: ignore[no-untyped-call]
    return Kube(api, timeout=10)


def config_map(namespace: str, name: str, value: str, **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "data": {"v": value},
    }


def test_apply_is_idempotent_and_owns_what_it_sets(kube: Kube, namespace: str) -> None:
    first = kube.apply(config_map(namespace, "c", "1"))
    again = kube.apply(config_map(namespace, "c", "1"))
    assert again["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
    managers = {m["manager"] for m in again["metadata"]["managedFields"]}
    assert managers == {FIELD_MANAGER}
    changed = kube.apply(config_map(namespace, "c", "2"))
    assert changed["data"] == {"v": "2"}
    assert changed["metadata"]["resourceVersion"] != first["metadata"]["resourceVersion"]


def test_create_if_absent_never_overwrites(kube: Kube, namespace: str) -> None:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s", "namespace": namespace},
        "stringData": {"k": "first"},
    }
    assert kube.create_if_absent(secret) is True
    assert kube.create_if_absent({**secret, "stringData": {"k": "second"}}) is False
    stored = kube.get("Secret", namespace, "s")
    assert stored is not None and stored["data"] == {"k": "Zmlyc3Q="}  # "first"


def test_get_list_and_delete(kube: Kube, namespace: str) -> None:
    assert kube.get("ConfigMap", namespace, "absent") is None
    kube.apply(config_map(namespace, "mine", "1", **{naming.LABEL_LIVESTREAM: "launch"}))
    kube.apply(config_map(namespace, "other", "1", **{naming.LABEL_LIVESTREAM: "other"}))
    listed = kube.list("ConfigMap", namespace, {naming.LABEL_LIVESTREAM: "launch"})
    assert [o["metadata"]["name"] for o in listed] == ["mine"]
    assert kube.delete("ConfigMap", namespace, "mine") is True
    assert kube.delete("ConfigMap", namespace, "mine") is False
    assert kube.get("ConfigMap", namespace, "mine") is None


def test_patch_status_writes_the_status_subresource_only(
    cluster: LocalCluster, crds: None, kube: Kube, namespace: str
) -> None:
    doc = {
        "apiVersion": "restream.dev/v1alpha1",
        "kind": "LiveStream",
        "metadata": {"name": "launch", "namespace": namespace},
        "spec": {},
    }
    cluster.kubectl("create", "-f", "-", input=json.dumps(doc))
    out = kube.patch_status(
        namespace, "launch", {"status": {"broadcasting": True}, "spec": {"suspend": True}}
    )
    assert out["status"]["broadcasting"] is True
    assert out["spec"].get("suspend") is not True  # the status subresource ignores spec


def test_refusals_carry_the_status_code_and_reason(kube: Kube, namespace: str) -> None:
    with pytest.raises(KubeError) as refused:
        kube.apply(config_map(namespace, "Not_A_Name", "1"))
    assert refused.value.status == 422
    assert refused.value.reason == "Invalid"
    with pytest.raises(KubeError) as missing:
        kube.patch_status(namespace, "absent", {"status": {}})
    assert missing.value.status == 404
