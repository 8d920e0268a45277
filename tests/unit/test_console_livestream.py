"""A LiveStream's page, without an API server: what its summaries let out (never a key),
and what its routes refuse before asking the cluster anything (the browser tests show
the page against the real control plane)."""

from __future__ import annotations

import json
import re
from importlib import resources
from typing import Any

import pytest

from restream_operator.console import livestream
from tests.unit.test_console_security import Console, console  # noqa: F401 (a fixture)

KEY = "live_2f8Yx-THE-INLINE-KEY"

LIVESTREAM: dict[str, Any] = {
    "apiVersion": "restream.dev/v1alpha1",
    "kind": "LiveStream",
    "metadata": {"name": "show", "namespace": "studio", "uid": "u1", "managedFields": []},
    "spec": {
        "restreams": [
            {"name": "Youtube", "serverUrl": "rtmp://a.rtmp.youtube.com/live2",
             "streamKey": KEY},
            {"name": "Twitch", "serverUrl": "rtmps://live.twitch.tv:443/app",
             "streamKeySecretRef": {"name": "tw", "key": "k"}, "enabled": False},
        ],
        "playback": {"hls": True},
    },
    "status": {
        "broadcasting": True,
        "broadcastStartedAt": "2026-01-01T00:00:00Z",
        "liveRestreams": "1/2",
        "ingest": {"rtmpUrl": "rtmp://show-ingest.studio.svc:1935/live",
                   "streamKeySecret": "show-stream-key", "bitrateKbps": 6000,
                   "somethingNew": "not for the page"},
        "restreams": [{"name": "Youtube", "state": "Live", "since": "2026-01-01T00:00:02Z",
                       "restarts": 1, "bitrateKbps": 4500}],
        "conditions": [{"type": "Ready", "status": "True", "reason": "Ready", "message": "m",
                        "lastTransitionTime": "2026-01-01T00:00:00Z", "observedGeneration": 1}],
    },
}  # fmt: skip


def test_the_detail_carries_no_key_value_and_only_what_the_page_shows() -> None:
    summary = livestream.detail(LIVESTREAM)
    assert KEY not in json.dumps(summary)
    youtube, twitch = summary["restreams"]
    assert youtube == {"name": "Youtube", "serverUrl": "rtmp://a.rtmp.youtube.com/live2"}
    assert twitch["streamKeySecretRef"] == {"name": "tw", "key": "k"}  # a name, not a key
    assert twitch["enabled"] is False
    assert summary["hls"] is True and summary["suspend"] is False
    assert summary["keySecret"] == {"name": "show-stream-key", "key": "streamKey"}
    status = summary["status"]
    assert status["ingest"] == {
        "rtmpUrl": "rtmp://show-ingest.studio.svc:1935/live",
        "streamKeySecret": "show-stream-key",
        "bitrateKbps": 6000,
    }
    assert status["restreams"][0]["bitrateKbps"] == 4500
    assert "observedGeneration" not in status["conditions"][0]
    assert status["broadcasting"] is True and status["liveRestreams"] == "1/2"


def test_the_detail_carries_each_protocol_the_spec_serves_and_its_status() -> None:
    obj = json.loads(json.dumps(LIVESTREAM))
    obj["spec"]["ingest"] = {"tls": {"secretRef": {"name": "show-tls"}}, "srt": {}}
    ingest = {
        "rtmpsUrl": "rtmps://show-ingest.studio.svc:1936/live",
        "externalRtmpsUrl": "rtmps://203.0.113.9:1936/live",
        "rtmpsError": "the TLS Secret show-tls does not exist yet",
        "srtUrl": "srt://show-ingest.studio.svc:9000",
        "externalSrtUrl": "srt://203.0.113.9:9000",
        "srtError": "the stream key is too short for an SRT passphrase",
        "clientProtocol": "RTMPS",
        "clientAddress": "198.51.100.4",
    }
    obj["status"]["ingest"].update(ingest)
    summary = livestream.detail(obj)
    assert summary["protocols"] == ["RTMP", "RTMPS", "SRT"]
    assert ingest.items() <= summary["status"]["ingest"].items()
    # [RTMPS, SRT]: plain RTMP off, whatever a stale status still says.
    obj["spec"]["ingest"]["protocols"] = ["RTMPS", "SRT"]
    assert livestream.detail(obj)["protocols"] == ["RTMPS", "SRT"]


@pytest.mark.parametrize(
    ("ingest", "status", "expected"),
    [
        (None, {}, ["RTMP"]),
        ({"srt": {"latencyMs": 400}}, {}, ["RTMP", "SRT"]),
        ({"tls": {"secretRef": {"name": "t"}}, "protocols": ["RTMPS"]}, {}, ["RTMPS"]),
        # A protocol only a newer CRD knows: the status's URLs say which are served.
        ({"protocols": ["QUIC"]}, {"rtmpUrl": "rtmp://x", "srtUrl": "srt://x"}, ["RTMP", "SRT"]),
    ],
)
def test_the_protocols_the_page_shows(
    ingest: dict[str, Any] | None, status: dict[str, Any], expected: list[str]
) -> None:
    spec = {} if ingest is None else {"ingest": ingest}
    assert livestream.ingest_protocols(spec, status) == expected


def test_a_livestream_the_operator_has_not_seen_yet_is_summarized_too() -> None:
    bare = {"metadata": {"name": "new", "namespace": "n"}, "spec": {"restreams": []}}
    summary = livestream.detail(bare)
    assert summary["status"] == {"ingest": {}, "restreams": [], "conditions": []}
    assert summary["keySecret"] == {"name": "new-stream-key", "key": "streamKey"}


@pytest.mark.parametrize(
    ("spec", "status", "expected"),
    [
        ({"streamKeySecretRef": {"name": "mine", "key": "k"}}, {}, ("mine", "k")),
        ({"streamKeySecretRef": {"name": "mine"}}, {}, ("mine", "streamKey")),
        ({}, {"ingest": {"streamKeySecret": "named"}}, ("named", "streamKey")),
        ({}, {}, ("show-stream-key", "streamKey")),
    ],
)
def test_the_ingest_key_secret(
    spec: dict[str, Any], status: dict[str, Any], expected: tuple[str, str]
) -> None:
    obj = {"metadata": {"name": "show"}, "spec": spec, "status": status}
    assert livestream.key_secret(obj) == expected


def test_an_event_for_the_timeline() -> None:
    event = {
        "metadata": {"uid": "e1", "name": "show.1"},
        "type": "Warning",
        "reason": "RestreamFailed",
        "message": "Twitch: connection refused",
        "count": 3,
        "firstTimestamp": "2026-01-01T00:00:00Z",
        "lastTimestamp": "2026-01-01T00:01:00Z",
        "source": {"component": "restream-operator"},
    }
    assert livestream.event_summary(event) == {
        "uid": "e1",
        "type": "Warning",
        "reason": "RestreamFailed",
        "message": "Twitch: connection refused",
        "count": 3,
        "first": "2026-01-01T00:00:00Z",
        "last": "2026-01-01T00:01:00Z",
        "source": "restream-operator",
    }
    # events.k8s.io-style posts carry eventTime only.
    bare = livestream.event_summary({"metadata": {"name": "x"}, "eventTime": "T"})
    assert (bare["uid"], bare["first"], bare["last"], bare["count"]) == ("x", "T", "T", 1)


def test_the_page_is_served_behind_the_guard_with_its_scripts(console: Console) -> None:  # noqa: F811
    assert console.request("/livestreams/studio/show").status == 401
    cookie = console.log_in()
    reply = console.request("/livestreams/studio/show", headers=cookie)
    assert reply.status == 200
    assert reply.headers.get_content_type() == "text/html"
    scripts = re.findall(r'<script\b[^>]*\bsrc="([^"]+)"', reply.body)
    # changes.js is another part of the console's; listed only when it is there.
    static = resources.files("restream_operator.console").joinpath("static")
    assert ("/static/changes.js" in scripts) == static.joinpath("changes.js").is_file()
    assert scripts[-1] == "/static/livestream.js"
    vendored = static.joinpath("vendor", "hls.min.js").is_file()
    # The HLS player (600 KiB) is no script of the page: the page fetches it when a
    # preview plays, from where data-player says, which is there only when it is.
    assert "/static/vendor/hls.min.js" not in scripts
    assert ('data-player="/static/vendor/hls.min.js"' in reply.body) == vendored
    if vendored:
        js = console.request("/static/vendor/hls.min.js", headers=cookie)
        assert js.status == 200 and js.headers.get_content_type() == "text/javascript"
    assert console.request("/static/livestream.js", headers=cookie).status == 200
    # A name that is no Kubernetes name never reaches an API path.
    for bad in ("/livestreams/Studio/show", "/livestreams/studio/..", "/livestreams/-a/show"):
        assert console.request(bad, headers=cookie).status == 404, bad
    assert "media-src 'self' blob:" in reply.headers["Content-Security-Policy"]


@pytest.mark.parametrize(
    "file",
    ["..%2F..%2Fapi%2Fv1%2Fsecrets", "stream.m3u8%2F..", "x.mp4", "stream", ".m3u8",
     "%2E%2E", "a%20b.ts", "stream.m3u8%00.ts"],
)  # fmt: skip
def test_the_hls_proxy_takes_one_checked_file_name(console: Console, file: str) -> None:  # noqa: F811
    reply = console.request(f"/api/livestreams/studio/show/hls/{file}", headers=console.log_in())
    assert reply.status == 404


def test_the_hls_proxy_and_the_key_say_what_the_api_server_answered(console: Console) -> None:  # noqa: F811
    """Here the API server is a closed port: said, with nothing else."""
    cookie = console.log_in()
    reply = console.request("/api/livestreams/studio/show/hls/stream.m3u8", headers=cookie)
    assert reply.status == 502 and "127.0.0.1" in reply.body
    # A change (a POST) from anywhere but the console's own page is refused first.
    path = "/api/livestreams/studio/show/key"
    assert console.request(path, "POST", headers=cookie).status == 403
    origin = {"Origin": f"http://127.0.0.1:{console.port}"}
    reply = console.request(path, "POST", headers={**cookie, **origin})
    assert reply.status == 502 and reply.headers.get_content_type() == "application/json"
    assert "127.0.0.1" in json.loads(reply.body)["message"]
    assert console.request(path, headers=cookie).status == 405  # never a GET


def test_the_feed_says_when_reading_the_livestream_fails(console: Console) -> None:  # noqa: F811
    reply = console.request("/api/livestreams/studio/show/stream", headers=console.log_in())
    assert reply.status == 200
    assert reply.headers.get_content_type() == "text/event-stream"
    events = [e for e in reply.body.split("\n\n") if e.startswith("event:")]
    assert len(events) == 1
    kind, data = events[0].split("\n")
    assert kind == "event: failure"
    assert json.loads(data.removeprefix("data: "))["message"].startswith("Reading show failed:")
