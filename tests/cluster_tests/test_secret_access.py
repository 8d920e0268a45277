"""A LiveStream may only name Secrets its author may read: real RBAC, real apiserver,
the webhook asking the apiserver (SubjectAccessReview) for the requesting user.

The user is "alice", impersonated by the admin kubeconfig (the apiserver hands the
webhook alice's userInfo exactly as for a client certificate of hers), bound to a Role
that allows every verb on livestreams and nothing on secrets.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from hack.localcluster.controlplane import LocalCluster
from hack.localcluster.operator_process import OperatorProcess

pytestmark = pytest.mark.cluster

USER = "alice"


def livestream(name: str, restreams: list[dict[str, Any]], **spec: Any) -> str:
    return json.dumps(
        {
            "apiVersion": "restream.dev/v1alpha1",
            "kind": "LiveStream",
            "metadata": {"name": name},
            "spec": {"restreams": restreams, **spec},
        }
    )


def by_ref(name: str, secret: str, url: str = "rtmp://a.example.com/live2") -> dict[str, Any]:
    return {"name": name, "serverUrl": url, "streamKeySecretRef": {"name": secret, "key": "k"}}


def as_user(
    cluster: LocalCluster, namespace: str, *args: str, text: str | None = None
) -> subprocess.CompletedProcess[str]:
    return cluster.kubectl("--as", USER, "-n", namespace, *args, input=text, check=False)


@pytest.fixture
def alice(cluster: LocalCluster, namespace: str, operator: OperatorProcess) -> str:
    """alice may do anything to LiveStreams in the namespace, and nothing to Secrets."""
    for secret in ("db-credentials", "alice-key"):
        cluster.kubectl(
            "create", "secret", "generic", secret, "-n", namespace, "--from-literal=k=v"
        )
    cluster.kubectl(
        "create",
        "role",
        "livestreams-only",
        "-n",
        namespace,
        "--verb=get,list,watch,create,update,patch,delete",
        "--resource=livestreams",
    )
    cluster.kubectl(
        "create",
        "rolebinding",
        "alice",
        "-n",
        namespace,
        "--role=livestreams-only",
        f"--user={USER}",
    )
    can = as_user(cluster, namespace, "auth", "can-i", "get", "secret/db-credentials")
    assert can.stdout.strip() == "no", "the test's premise: alice cannot read the Secret"
    return namespace


def test_a_secret_the_author_cannot_read_is_refused_on_create(
    cluster: LocalCluster, alice: str
) -> None:
    ingest_ref = {"name": "db-credentials", "key": "k"}
    # The ingest's certificate too: its pod would mount the Secret's private key.
    ingest_tls = {"tls": {"secretRef": {"name": "db-credentials"}}}
    for text, field in (
        (livestream("show", [by_ref("Youtube", "db-credentials")]), "streamKeySecretRef.name"),
        (livestream("show", [], streamKeySecretRef=ingest_ref), "streamKeySecretRef.name"),
        (livestream("show", [], ingest=ingest_tls), "spec.ingest.tls.secretRef.name"),
    ):
        refused = as_user(cluster, alice, "create", "-f", "-", text=text)
        assert refused.returncode != 0
        assert f'"{USER}" may not get Secret "db-credentials"' in refused.stderr
        assert field in refused.stderr
        assert "get' on secrets/db-credentials" in refused.stderr
    assert as_user(cluster, alice, "get", "livestream", "show").returncode != 0


def test_granted_get_on_that_secret_name_is_enough(cluster: LocalCluster, alice: str) -> None:
    cluster.kubectl(
        "create",
        "role",
        "read-alice-key",
        "-n",
        alice,
        "--verb=get",
        "--resource=secrets",
        "--resource-name=alice-key",
    )
    cluster.kubectl(
        "create",
        "rolebinding",
        "read-alice-key",
        "-n",
        alice,
        "--role=read-alice-key",
        f"--user={USER}",
    )
    created = as_user(
        cluster,
        alice,
        "create",
        "-f",
        "-",
        text=livestream("show", [by_ref("Youtube", "alice-key")]),
    )
    assert created.returncode == 0, created.stderr
    # Another Secret is still not hers to name.
    moved = as_user(
        cluster,
        alice,
        "apply",
        "-f",
        "-",
        text=livestream(
            "show", [by_ref("Youtube", "alice-key"), by_ref("Twitch", "db-credentials")]
        ),
    )
    assert moved.returncode != 0
    assert 'Secret "db-credentials"' in moved.stderr


def test_the_author_cannot_move_a_destination_that_uses_someone_elses_secret(
    cluster: LocalCluster, alice: str
) -> None:
    # The admin (who may read it) sets up a destination with a Secret alice cannot read.
    cluster.kubectl(
        "create",
        "-n",
        alice,
        "-f",
        "-",
        input=livestream("show", [by_ref("Youtube", "db-credentials")]),
    )
    stolen = by_ref("Youtube", "db-credentials", url="rtmp://attacker.example.net/live2")
    moved = as_user(cluster, alice, "apply", "-f", "-", text=livestream("show", [stolen]))
    assert moved.returncode != 0
    assert f'"{USER}" may not get Secret "db-credentials"' in moved.stderr
    stored = json.loads(
        cluster.kubectl("get", "livestream", "show", "-n", alice, "-o", "json").stdout
    )
    assert stored["spec"]["restreams"][0]["serverUrl"] == "rtmp://a.example.com/live2"
    # A change that does not touch the spec (labels, annotations) stays allowed.
    labelled = as_user(cluster, alice, "label", "livestream", "show", "team=live")
    assert labelled.returncode == 0, labelled.stderr
