"""Admission through the real apiserver: it calls the operator's webhooks over TLS."""

from __future__ import annotations

import json
from typing import Any

import pytest

from hack.localcluster.controlplane import LocalCluster
from hack.localcluster.operator_process import OperatorProcess, wait_for_webhooks

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


def test_good_livestream_is_stored_with_defaults_and_warnings(
    cluster: LocalCluster, namespace: str, operator: OperatorProcess
) -> None:
    out = apply(cluster, namespace, manifest(GOOD))
    assert out.returncode == 0, out.stderr
    # kubectl shows admission warnings: the inline key, the missing Secret, rtmp->rtmps.
    assert "streamKeySecretRef" in out.stderr
    assert 'Secret "yt" does not exist yet' in out.stderr
    assert "rtmps://" in out.stderr
    spec = stored(cluster, namespace)["spec"]
    assert [r["enabled"] for r in spec["restreams"]] == [True, True]
    assert spec["restreams"][0]["streamKeySecretRef"] == {"name": "yt", "key": "streamKey"}
    assert spec["suspend"] is False
    assert spec["ingest"]["serviceType"] == "ClusterIP"


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
    assert "private" in out.stderr


DOWN_CASES: list[tuple[list[dict[str, Any]], str]] = [
    (
        [
            {"name": "Youtube", "serverUrl": "rtmp://a.example.com/x", "streamKey": "k"},
            {"name": "YOUTUBE", "serverUrl": "rtmp://b.example.com/x", "streamKey": "k"},
        ],
        "must be unique, ignoring case",
    ),
    (
        [
            {
                "name": "Both",
                "serverUrl": "rtmp://a.example.com/x",
                "streamKey": "k",
                "streamKeySecretRef": {"name": "s"},
            }
        ],
        "set exactly one of streamKey or streamKeySecretRef",
    ),
    (
        [{"name": "Web", "serverUrl": "http://a.example.com/x", "streamKey": "k"}],
        "rtmp://, rtmps:// or srt://",
    ),
    (
        [{"name": "Inject", "serverUrl": "rtmp://a.example.com/x;y", "streamKey": "k"}],
        "must not contain",
    ),
    (
        [
            {
                "name": "Plain",
                "serverUrl": "rtmp://a.example.com/x",
                "streamKey": "k",
                "tls": {"caSecretRef": {"name": "ca"}},
            }
        ],
        "tls applies to rtmps:// destinations only",
    ),
    (
        [
            {
                "name": "Rtmps",
                "serverUrl": "rtmps://a.example.com/x",
                "streamKey": "k",
                "srt": {"passphraseSecretRef": {"name": "p"}},
            }
        ],
        "srt applies to srt:// destinations only",
    ),
    (
        [
            {
                "name": "Both",
                "serverUrl": "rtmps://a.example.com/x",
                "streamKey": "k",
                "tls": {"caSecretRef": {"name": "ca"}, "insecureSkipVerify": True},
            }
        ],
        "set caSecretRef or insecureSkipVerify: true, not both",
    ),
]


@pytest.mark.parametrize(
    ("restreams", "phrase"),
    DOWN_CASES,
    ids=[
        "duplicate-names",
        "both-keys",
        "http",
        "semicolon",
        "tls-on-rtmp",
        "srt-on-rtmps",
        "ca-and-insecure",
    ],
)
def test_with_the_webhook_down_the_crd_still_refuses_what_it_can_express(
    cluster: LocalCluster,
    namespace: str,
    operator: OperatorProcess,
    restreams: list[dict[str, Any]],
    phrase: str,
) -> None:
    operator.stop()  # removes its webhook configurations on the way out
    try:
        gone = cluster.kubectl(
            "get", "validatingwebhookconfiguration", "restream-operator", check=False
        )
        assert "NotFound" in gone.stderr
        out = apply(cluster, namespace, manifest(restreams))
        assert out.returncode != 0
        assert "admission webhook" not in out.stderr
        assert phrase in out.stderr
    finally:
        operator.start()
        wait_for_webhooks(cluster)
