"""Admission through the real apiserver: it calls the operator's webhook over TLS.

(What the API server refuses by itself, with the webhook down, is test_cel_parity.py.)
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from hack.localcluster.census import metric_sum
from hack.localcluster.controlplane import LocalCluster
from hack.localcluster.operator_process import OperatorProcess

pytestmark = pytest.mark.cluster


def manifest(restreams: list[dict[str, Any]], name: str = "show", **spec: Any) -> str:
    return json.dumps(
        {
            "apiVersion": "restream.dev/v1alpha1",
            "kind": "LiveStream",
            "metadata": {"name": name},
            "spec": {"restreams": restreams, **spec},
        }
    )


GOOD: list[dict[str, Any]] = [
    {
        "name": "Youtube",
        "serverUrl": "rtmp://a.rtmp.youtube.com/live2",
        "streamKeySecretRef": {"name": "yt"},
    },
    {"name": "Twitch", "serverUrl": "rtmps://live.twitch.tv:443/app", "streamKey": "live_1"},
]


def apply(cluster: LocalCluster, namespace: str, text: str) -> Any:
    return cluster.kubectl("apply", "-n", namespace, "-f", "-", input=text, check=False)


def stored(cluster: LocalCluster, namespace: str, name: str = "show") -> dict[str, Any]:
    out = cluster.kubectl("get", "livestream", name, "-n", namespace, "-o", "json")
    return dict(json.loads(out.stdout))


@pytest.mark.parametrize(
    ("restreams", "field", "phrase"),
    [
        (
            [{"name": "Local", "serverUrl": "rtmp://127.0.0.1/live", "streamKey": "k"}],
            'spec.restreams[0] ("Local").serverUrl',
            "loopback",
        ),
        (
            [{"name": "Svc", "serverUrl": "rtmp://relay.default.svc/live", "streamKey": "k"}],
            'spec.restreams[0] ("Svc").serverUrl',
            "cluster",
        ),
        (
            [
                {"name": f"D{i}", "serverUrl": f"rtmp://d{i}.example.com/a", "streamKey": "k"}
                for i in range(6)
            ],
            "spec.restreams",
            "RESTREAM_MAX_RESTREAMS",
        ),
        (
            [{"name": "Dec", "serverUrl": "rtmp://2130706433/live", "streamKey": "k"}],
            'spec.restreams[0] ("Dec").serverUrl',
            "127.0.0.1",
        ),
    ],
    ids=["loopback", "cluster-service", "too-many", "decimal-ip"],
)
def test_bad_livestream_is_refused_with_the_webhooks_message(
    cluster: LocalCluster,
    namespace: str,
    operator: OperatorProcess,
    restreams: list[dict[str, Any]],
    field: str,
    phrase: str,
) -> None:
    out = apply(cluster, namespace, manifest(restreams))
    assert out.returncode != 0
    assert 'admission webhook "validate.livestreams.restream.dev" denied the request' in out.stderr
    assert field in out.stderr
    assert phrase in out.stderr
    gone = cluster.kubectl("get", "livestream", "show", "-n", namespace, check=False)
    assert "NotFound" in gone.stderr


def test_good_livestream_is_stored_with_warnings(
    cluster: LocalCluster, namespace: str, operator: OperatorProcess
) -> None:
    out = apply(cluster, namespace, manifest(GOOD))
    assert out.returncode == 0, out.stderr
    # kubectl shows admission warnings: the inline key, the missing Secret, rtmp->rtmps.
    assert "streamKeySecretRef" in out.stderr
    assert 'Secret "yt" does not exist yet' in out.stderr
    assert "rtmps://" in out.stderr
    # The schema's defaults (the API server's doing; test_cel_parity.py checks them all).
    assert stored(cluster, namespace)["spec"]["restreams"][0]["enabled"] is True


@pytest.mark.parametrize(
    ("secret_key", "expected"),
    [
        ("key", None),
        (None, 'streamKeySecretRef.name: Secret "yt" does not exist yet in namespace'),
        ("other", 'streamKeySecretRef.key: Secret "yt" has no key "key" yet in namespace'),
    ],
    ids=["present", "missing-secret", "missing-key"],
)
def test_a_referenced_secret_warns_only_when_it_or_its_key_is_missing(
    cluster: LocalCluster,
    namespace: str,
    operator: OperatorProcess,
    secret_key: str | None,
    expected: str | None,
) -> None:
    if secret_key is not None:
        cluster.kubectl(
            "create", "secret", "generic", "yt", "-n", namespace, f"--from-literal={secret_key}=x"
        )
    ref = {"name": "yt", "key": "key"}
    restreams = [
        {
            "name": "Youtube",
            "serverUrl": "rtmp://a.rtmp.youtube.com/live2",
            "streamKeySecretRef": ref,
        }
    ]
    for dry_run in (["--dry-run=server"], []):  # as `kubectl apply --dry-run=server` too
        out = cluster.kubectl(
            "apply", "-n", namespace, *dry_run, "-f", "-", input=manifest(restreams), check=False
        )
        assert out.returncode == 0, out.stderr
        assert "rtmps://" in out.stderr  # the webhook answered, with its other warning
        about_secrets = [line for line in out.stderr.splitlines() if "Secret" in line]
        assert len(about_secrets) == (0 if expected is None else 1), out.stderr
        if expected is not None:
            assert expected in about_secrets[0]
            assert "the relay will wait for it" in about_secrets[0]


def test_update_that_would_break_a_stored_object_is_refused_and_changes_nothing(
    cluster: LocalCluster, namespace: str, operator: OperatorProcess
) -> None:
    assert apply(cluster, namespace, manifest(GOOD)).returncode == 0
    before = stored(cluster, namespace)
    broken = json.loads(json.dumps(GOOD))
    broken[1]["serverUrl"] = "rtmp://169.254.169.254/latest"
    out = apply(cluster, namespace, manifest(broken))
    assert out.returncode != 0
    assert "link-local" in out.stderr
    after = stored(cluster, namespace)
    assert after["spec"] == before["spec"]
    # (resourceVersion moves with the operator's status writes; generation only with spec)
    assert after["metadata"]["generation"] == before["metadata"]["generation"]


def test_dry_run_server_side_goes_through_the_webhook(
    cluster: LocalCluster, namespace: str, operator: OperatorProcess
) -> None:
    bad = [{"name": "Meta", "serverUrl": "rtmp://[::ffff:10.0.0.1]/x", "streamKey": "k"}]
    out = cluster.kubectl(
        "apply", "-n", namespace, "--dry-run=server", "-f", "-", input=manifest(bad), check=False
    )
    assert out.returncode != 0
    assert 'admission webhook "validate.livestreams.restream.dev" denied the request' in out.stderr
    assert "private" in out.stderr


def test_only_a_create_or_a_spec_change_is_sent_to_the_webhook(
    cluster: LocalCluster, namespace: str, operator: OperatorProcess
) -> None:
    """An update of metadata only (kopf's annotation, a GitOps tool's labels) is not
    reviewed: the API server skips the webhook by its match condition."""
    webhook = "validate.livestreams.restream.dev"

    def reviews() -> float:
        return metric_sum(
            cluster, "apiserver_admission_webhook_request_total", name=webhook, operation="UPDATE"
        )

    def skipped() -> float:
        return metric_sum(
            cluster, "apiserver_admission_match_condition_exclusions_total", name=webhook
        )

    assert apply(cluster, namespace, manifest(GOOD)).returncode == 0
    before_reviews, before_skipped = reviews(), skipped()
    cluster.kubectl("annotate", "livestream", "show", "-n", namespace, "example.com/team=live")
    cluster.kubectl("label", "livestream", "show", "-n", namespace, "tier=gold")
    assert reviews() == before_reviews
    assert skipped() >= before_skipped + 2

    # A spec change is reviewed: refused here, and so never stored.
    patch = {"spec": {"restreams": [{**GOOD[0], "serverUrl": "rtmp://127.0.0.1/live"}]}}
    out = cluster.kubectl(
        "patch", "livestream", "show", "-n", namespace, "--type=merge",
        "-p", json.dumps(patch), check=False,
    )  # fmt: skip
    assert out.returncode != 0
    assert "loopback" in out.stderr
    assert reviews() == before_reviews + 1
    labels = stored(cluster, namespace)["metadata"]["labels"]
    assert labels["tier"] == "gold"
