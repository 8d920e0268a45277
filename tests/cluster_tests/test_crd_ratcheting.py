"""CRD validation ratcheting: why the oldest Kubernetes the README claims is 1.30, and
what 1.30 to 1.32 still lack (docs/kubernetes-versions.md).

A release may tighten a CEL rule of the CRD (this project's have: the SRT options, the
characters of a serverUrl). A LiveStream stored before such an upgrade must not be locked
out of the writes kopf makes to it, its finalizers above all: one that cannot be removed
keeps the LiveStream from being deleted. From 1.30 (ratcheting on by default) the API
server lets a metadata write through when the offending spec is unchanged; before, it
checks the spec again and refuses. Status writes, the operator's, are ratcheted only from
1.33 (k8s.io/apiextensions-apiserver's status strategy gained it then): on 1.30 to 1.32
such a LiveStream keeps its last status until its spec is fixed, and this test holds the
docs to that.

The test runs on a copy of the generated CRD in a group of its own, so that nothing else
in the session (the operator, its webhook, the other tests) sees the tightened schema.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest

from hack.localcluster.controlplane import LocalCluster
from hack.localcluster.versions import minor
from hack.waiting import wait_for
from restream_operator import crd, models

pytestmark = pytest.mark.cluster

GROUP = "ratchet.restream.test"
# Names of its own too: kubectl resolves `livestream` across groups, and would send the
# later tests' `kubectl get livestream` here while this CRD exists or is cached.
KIND, PLURAL = "LiveStreamCopy", "livestreamcopies"
RESOURCE = f"{PLURAL}.{GROUP}"
TIGHTER = "at most 3 characters (a rule a later release adds)"
# The first minor whose API server ratchets status writes too.
STATUS_RATCHETED_FROM = (1, 33)


def _crd(tightened: bool) -> dict[str, Any]:
    out = copy.deepcopy(crd.custom_resource_definition())
    out["metadata"]["name"] = RESOURCE
    out["spec"]["group"] = GROUP
    out["spec"]["names"] = {
        "kind": KIND, "listKind": f"{KIND}List", "plural": PLURAL, "singular": KIND.lower(),
    }  # fmt: skip
    if tightened:
        schema = out["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        name = schema["properties"]["spec"]["properties"]["restreams"]["items"]["properties"]
        name["name"].setdefault("x-kubernetes-validations", []).append(
            {"rule": "size(self) <= 3", "message": TIGHTER}
        )
    return out


def _livestream(name: str, destination: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{models.VERSION}",
        "kind": KIND,
        "metadata": {"name": name},
        "spec": {
            "restreams": [
                {
                    "name": destination,
                    "serverUrl": "rtmps://a.rtmps.youtube.com/live2",
                    "streamKeySecretRef": {"name": "yt", "key": "key"},
                }
            ]
        },
    }


def _apply(cluster: LocalCluster, obj: dict[str, Any], *args: str) -> None:
    cluster.kubectl("apply", "--server-side", "-f", "-", *args, input=json.dumps(obj))


@pytest.fixture
def copied_crd(cluster: LocalCluster) -> Iterator[None]:
    _apply(cluster, _crd(tightened=False))
    cluster.wait_established(RESOURCE)
    yield
    cluster.kubectl("delete", "crd", RESOURCE, "--timeout=60s", check=False)


def test_a_stored_livestream_keeps_its_finalizer_writes_after_a_rule_tightens(
    cluster: LocalCluster, namespace: str, copied_crd: None
) -> None:
    _apply(cluster, _livestream("show", "Youtube"), "-n", namespace)
    _apply(cluster, _crd(tightened=True), "--force-conflicts")

    def tightened() -> bool:
        # the API server takes up a changed CRD asynchronously: wait until a new object
        # breaking the new rule is refused with its message
        out = cluster.kubectl(
            "create", "--dry-run=server", "-n", namespace, "-f", "-",
            input=json.dumps(_livestream("probe", "Twitch")), check=False,
        )  # fmt: skip
        return out.returncode != 0 and TIGHTER in out.stderr

    wait_for(tightened, "the tightened rule in force")
    ls = [f"{RESOURCE}/show", "-n", namespace]

    # what kopf writes: a finalizer added, then removed (as before a deletion)
    for finalizers in (["restream.test/hold"], None):
        patch = {"metadata": {"finalizers": finalizers}}
        out = cluster.kubectl("patch", *ls, "--type=merge", "-p", json.dumps(patch), check=False)
        assert out.returncode == 0, out.stderr

    # what the operator writes: the status subresource
    status = {"status": {"broadcasting": False, "liveRestreams": "0/1"}}
    out = cluster.kubectl(
        "patch", *ls, "--subresource=status", "--type=merge", "-p", json.dumps(status),
        check=False,
    )  # fmt: skip
    served = json.loads(cluster.kubectl("get", "--raw", "/version").stdout)["gitVersion"]
    major, minor_ = (int(n) for n in minor(served).split("."))
    if (major, minor_) >= STATUS_RATCHETED_FROM:
        assert out.returncode == 0, out.stderr
    else:
        assert out.returncode != 0 and TIGHTER in out.stderr, (served, out.stderr)
    stored = json.loads(cluster.kubectl("get", *ls, "-o", "json").stdout)
    assert not stored["metadata"].get("finalizers")
    assert (stored.get("status") or {}).get("liveRestreams") == (
        "0/1" if out.returncode == 0 else None
    )

    # and the tightened rule does hold the spec: editing the offending name is refused
    edit = [{"op": "replace", "path": "/spec/restreams/0/name", "value": "YouTube"}]
    out = cluster.kubectl("patch", *ls, "--type=json", "-p", json.dumps(edit), check=False)
    assert out.returncode != 0 and TIGHTER in out.stderr
