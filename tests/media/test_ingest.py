"""The ingest agent on its own: nginx supervision, HLS playback, shutdown, notify guards."""

from __future__ import annotations

import json
import os
import secrets
import signal
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hack.media.harness import (
    Ingest,
    Processes,
    StatusLog,
    children,
    example,
    http_status,
    port_open,
    render,
    rendered,
    start_ingest,
    start_publisher,
    wait_for,
    workdir,
)
from restream_operator.agent import contract

pytestmark = [pytest.mark.media, pytest.mark.timeout(90)]


def _manifest(hls: bool) -> dict[str, Any]:
    doc = example()
    doc["spec"]["playback"] = {"hls": hls}
    return doc


@pytest.fixture
def env() -> Iterator[tuple[Processes, Path]]:
    with workdir("restream-ingest-") as root:
        procs = Processes(root)
        try:
            yield procs, root
        finally:
            procs.close()


def _nginx_master(ingest: Ingest) -> int:
    assert ingest.proc is not None
    (master,) = children(ingest.proc.pid)
    return master


def _gone(pid: int) -> bool:
    try:
        return b"nginx" not in Path(f"/proc/{pid}/cmdline").read_bytes()  # zombie: empty
    except OSError:
        return True


def test_nginx_is_restarted_and_the_broadcast_state_cleared(env: tuple[Processes, Path]) -> None:
    procs, root = env
    plan = rendered(render(_manifest(False), root))
    key, token = f"sk-{secrets.token_hex(8)}", secrets.token_hex(8)
    ingest = start_ingest(procs, plan, root, key, token)
    status = StatusLog()
    start_publisher(procs, ingest, key)
    wait_for(lambda: status.get(ingest.status_url)["publishing"], "publishing", 5)
    master = _nginx_master(ingest)
    (worker,) = children(master)
    # The hard case: the master dies alone; its orphaned worker keeps the ports and the
    # agent's pipes open until the agent kills it.
    os.kill(master, signal.SIGKILL)
    wait_for(lambda: not status.get(ingest.status_url)["publishing"], "state cleared", 5)
    wait_for(lambda: http_status(f"http://127.0.0.1:{ingest.agent_port}/readyz") == 200,
             "nginx back", 10)  # fmt: skip
    assert _nginx_master(ingest) != master
    wait_for(lambda: _gone(worker), "the orphaned worker to be killed", 5)
    metrics = (
        urllib.request.urlopen(f"http://127.0.0.1:{ingest.agent_port}/metrics", timeout=2)
        .read()
        .decode()
    )
    assert "restream_ingest_nginx_restarts_total 1.0" in metrics
    # An encoder reconnecting after the crash gets in again.
    start_publisher(procs, ingest, key)
    wait_for(lambda: status.get(ingest.status_url)["publishing"], "publishing again", 8)


def test_hls_playback_is_served_and_reported(env: tuple[Processes, Path]) -> None:
    procs, root = env
    plan = rendered(render(_manifest(True), root))
    assert "hls on;" in plan.nginx_conf
    key, token = f"sk-{secrets.token_hex(8)}", secrets.token_hex(8)
    hls_url = "http://launch-ingest.demo.svc.cluster.local:8088/hls/stream.m3u8"
    ingest = start_ingest(procs, plan, root, key, token, ["--hls-url", hls_url])
    status = StatusLog()
    assert status.get(ingest.status_url)["hlsUrl"] == hls_url
    start_publisher(procs, ingest, key)
    local = f"http://127.0.0.1:{ingest.hls_port}/hls/{contract.STREAM_NAME}.m3u8"
    wait_for(lambda: http_status(local) == 200, "an HLS playlist", 15, 0.25)
    playlist = urllib.request.urlopen(local, timeout=2).read().decode()
    segment = next(line for line in playlist.splitlines() if line.endswith(".ts"))
    assert http_status(local.rsplit("/", 1)[0] + "/" + segment) == 200
    assert key not in playlist  # the stream is "stream", never the key


def test_sigterm_stops_nginx_and_exits_0(env: tuple[Processes, Path]) -> None:
    procs, root = env
    plan = rendered(render(_manifest(False), root))
    ingest = start_ingest(procs, plan, root, "k", "t")
    master = _nginx_master(ingest)
    assert ingest.proc is not None
    t0 = time.monotonic()
    ingest.proc.send(signal.SIGTERM)
    assert ingest.proc.popen.wait(6) == 0
    assert time.monotonic() - t0 < 6
    assert not Path(f"/proc/{master}").exists()
    assert not port_open(ingest.rtmp_port)


def test_notifications_decide_publish_and_play(env: tuple[Processes, Path]) -> None:
    """What nginx-rtmp asks, asked directly: key, busy, rename, token."""
    procs, root = env
    plan = rendered(render(_manifest(False), root))
    ingest = start_ingest(procs, plan, root, "the-key", "the-token")
    base = f"http://127.0.0.1:{ingest.agent_port}/rtmp"

    def post(path: str, **form: str) -> tuple[int, str]:
        body = "&".join(f"{k}={v}" for k, v in form.items()).encode()
        req = urllib.request.Request(f"{base}/{path}", data=body, method="POST")  # noqa: S310
        try:
            with urllib.request.urlopen(req, timeout=2) as r:  # noqa: S310
                return r.status, r.headers.get("Location") or ""
        except urllib.error.HTTPError as e:
            return e.code, e.headers.get("Location") or ""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *_: object) -> None:
            return None

    urllib.request.install_opener(urllib.request.build_opener(NoRedirect))
    try:
        assert post("publish", call="publish", name="nope", clientid="1", addr="a")[0] == 403
        assert post("publish", call="publish", name="the-key", clientid="2", addr="b") == (
            302,
            contract.STREAM_NAME,
        )
        assert post("publish", call="publish", name="the-key", clientid="3", addr="c")[0] == 403
        assert post("play", call="play", name="stream", token="wrong")[0] == 403
        assert post("play", call="play", name="stream", token="the-token")[0] == 200
        # A refused publisher's disconnect must not end the live one's broadcast.
        assert post("publish-done", call="publish_done", clientid="3")[0] == 200
        doc = json.loads(urllib.request.urlopen(ingest.status_url, timeout=2).read())  # noqa: S310
        assert doc["publishing"] is True and doc["clientAddress"] == "b"
        assert post("publish-done", call="publish_done", clientid="2")[0] == 200
        doc = json.loads(urllib.request.urlopen(ingest.status_url, timeout=2).read())  # noqa: S310
        assert doc["publishing"] is False
    finally:
        urllib.request.install_opener(urllib.request.build_opener())


def test_the_ingest_reports_what_the_encoder_really_sends(env: tuple[Processes, Path]) -> None:
    """ffmpeg publishing 1280x720 at 30 fps with a keyframe every 5 s at about 4 Mbit/s
    and AAC: the agent's figures come from the stream, not from the metadata it
    announces."""
    procs, root = env
    plan = rendered(render(example(), root))
    key, token = f"sk-{secrets.token_hex(8)}", secrets.token_hex(8)
    ingest = start_ingest(procs, plan, root, key, token)
    status = StatusLog()
    start_publisher(
        procs, ingest, key,
        size="1280x720", fps=30, gop=150, video_bitrate="4000k",
        audio=("-c:a", "aac", "-b:a", "128k"),
    )  # fmt: skip
    # Two keyframes 5 s apart, and 10 s of media for the rates.
    wait_for(
        lambda: (status.get(ingest.status_url).get("sourceVideo") or {}).get(
            "keyframeIntervalSeconds"
        ),
        "a measured keyframe interval",
        40,
        0.5,
    )
    wait_for(
        lambda: status.get(ingest.status_url)["sourceVideo"]["bitrateKbps"] is not None,
        "a measured bitrate",
        10,
        0.5,
    )
    doc = status.get(ingest.status_url)
    video, audio = doc["sourceVideo"], doc["sourceAudio"]
    print(video, audio)
    assert (video["width"], video["height"]) == (1280, 720)
    assert video["frameRate"] == 30.0
    assert abs(video["keyframeIntervalSeconds"] - 5.0) <= 0.1
    assert 0.75 * 4000 <= video["bitrateKbps"] <= 1.25 * 4000
    # The test encoder's tone is mono at 48 kHz.
    assert (audio["sampleRateHz"], audio["channels"]) == (48000, 1)
    assert 0.8 * 128 <= audio["bitrateKbps"] <= 1.2 * 128
