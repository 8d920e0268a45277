"""What the console's overview makes of a LiveStream, and of the viewer's kubeconfig."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from hack.localcluster.livestreams import status_condition as condition
from restream_operator import cli
from restream_operator.console.overview import Viewer, needs_attention, summarize
from tests.unit.admission import helpers


def livestream(status: dict[str, Any] | None = None, restreams: int = 2) -> dict[str, Any]:
    obj = helpers.livestream(
        *(helpers.restream(f"D{i}", streamKey="secret-key") for i in range(restreams)),
        name="launch",
    )
    if status is not None:
        obj["status"] = status
    return obj


def test_a_livestream_the_operator_has_not_seen_yet() -> None:
    assert summarize(livestream(restreams=3)) == {
        "namespace": "media",
        "name": "launch",
        "broadcasting": None,
        "ingest": None,
        "live": None,
        "total": 3,
        "problems": [],
    }


def test_a_broadcast_on_air_with_one_destination_failing() -> None:
    status = {
        "broadcasting": True,
        "liveRestreams": "1/2",
        "ingest": {"rtmpUrl": "rtmp://launch-ingest.media.svc:1935/live"},
        "conditions": [
            condition("Ready", "False", "RestreamsNotReady", "D1 is Retrying: refused"),
            condition("IngestReady", "True", "Available"),
            condition("Broadcasting", "True", "Publishing"),
            condition("RestreamsReady", "False", "RestreamsNotReady", "D1 is Retrying"),
            condition("Relayable", "True", "Relayable"),
            condition("Reconciling", "False", "Reconciled"),
            condition("Stalled", "False", "Proceeding"),
            condition("UpdatePending", "False", "UpToDate"),
        ],
        "restreams": [{"name": "D0", "state": "Live"}, {"name": "D1", "state": "Retrying"}],
    }
    out = summarize(livestream(status))
    assert out["broadcasting"] is True
    assert out["ingest"] == "Available"
    assert (out["live"], out["total"]) == (1, 2)
    assert out["problems"] == [
        {
            "type": "Ready",
            "status": "False",
            "reason": "RestreamsNotReady",
            "message": "D1 is Retrying: refused",
        },
        {
            "type": "RestreamsReady",
            "status": "False",
            "reason": "RestreamsNotReady",
            "message": "D1 is Retrying",
        },
    ]
    # Only what a row shows: no spec, no stream keys, no URLs.
    assert "secret-key" not in repr(out) and "://" not in repr(out)


def test_the_ingest_state_is_the_ingest_ready_conditions_reason_while_not_ready() -> None:
    status = {"conditions": [condition("IngestReady", "False", "ImagePullBackOff", "no image")]}
    assert summarize(livestream(status))["ingest"] == "ImagePullBackOff"


@pytest.mark.parametrize(
    ("kind", "status", "shown"),
    [
        ("Ready", "True", False),
        ("Ready", "False", True),
        ("Ready", "Unknown", True),
        ("IngestReady", "False", True),
        ("RestreamsReady", "Unknown", True),
        ("Broadcasting", "False", False),  # its own column, not a fault
        ("Broadcasting", "Unknown", False),
        ("Relayable", "Unknown", False),  # nobody publishes
        ("Relayable", "False", True),
        ("Reconciling", "False", False),  # kstatus' abnormal-true conditions
        ("Reconciling", "True", True),
        ("Stalled", "False", False),
        ("Stalled", "True", True),
        ("UpdatePending", "False", False),
        ("UpdatePending", "True", True),
        ("SomethingNew", "False", True),
        ("SomethingNew", "True", False),
    ],
)
def test_which_conditions_need_attention(kind: str, status: str, shown: bool) -> None:
    assert needs_attention(condition(kind, status)) is shown


@pytest.mark.parametrize("shown", ["", "2", "a/b", "1/", 7])
def test_a_live_count_that_cannot_be_read_is_unknown_out_of_the_spec(shown: object) -> None:
    out = summarize(livestream({"liveRestreams": shown}, restreams=4))
    assert (out["live"], out["total"]) == (None, 4)


def _kubeconfig(path: Path) -> Path:
    cluster = {"server": "https://127.0.0.1:6443", "insecure-skip-tls-verify": True}
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "local", "cluster": cluster}],
        "users": [
            {"name": "alice", "user": {"token": "alice-token"}},
            {"name": "bob", "user": {"token": "bob-token"}},
        ],
        "contexts": [
            {"name": "a", "context": {"cluster": "local", "user": "alice", "namespace": "studio"}},
            {"name": "b", "context": {"cluster": "local", "user": "bob"}},
        ],
        "current-context": "a",
    }
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.mark.parametrize(
    ("context", "token", "namespace"),
    [
        (None, "alice-token", "studio"),
        ("a", "alice-token", "studio"),
        ("b", "bob-token", "default"),
    ],
)
def test_the_viewer_is_the_kubeconfig_contexts_user(
    tmp_path: Path, context: str | None, token: str, namespace: str
) -> None:
    viewer = Viewer.from_kubeconfig(str(_kubeconfig(tmp_path / "config")), context)
    configuration = viewer.kube.api.configuration
    assert configuration.host == "https://127.0.0.1:6443"
    # What Kube sends with every request (its auth_settings).
    assert configuration.auth_settings()["BearerToken"]["value"] == f"Bearer {token}"
    assert viewer.namespace == namespace


def test_the_kubeconfig_comes_from_the_environment_when_not_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(_kubeconfig(tmp_path / "config")))
    assert Viewer.from_kubeconfig(None, "b").namespace == "default"


def test_a_context_the_kubeconfig_lacks_is_refused(tmp_path: Path) -> None:
    path = str(_kubeconfig(tmp_path / "config"))
    assert cli.main(["console", "--kubeconfig", path, "--context", "nope"]) == 2


@pytest.mark.parametrize("port", ["-1", "65536", "http", ""])
def test_a_port_that_is_not_one_is_refused(port: str) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.build_parser().parse_args(["console", "--port", port])
    assert exited.value.code == 2


def test_the_console_listens_on_the_port_asked_for_and_its_defaults() -> None:
    args = cli.build_parser().parse_args(["console"])
    assert (args.port, args.context, args.kubeconfig) == (0, None, None)
    assert cli.build_parser().parse_args(["console", "--port", "8765"]).port == 8765
