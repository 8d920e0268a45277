"""The status of a LiveStream with a rendition, written by the real operator from the
real agents (tests/media/world.py: the local control plane, and each pod's agent run
here for real at the address Kubernetes reports, the rendition's encoder among them).
Nothing here computes a status: the test reads what the operator wrote.

The encoder publishes a keyframe every 5 s. A destination on YouTube's host that gets
the source is warned (naming the rendition that would fix it); one on YouTube's host
that gets the rendition (2 s keyframes) is not. The rendition's entry says what its
encoder really serves, measured from the ingest.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from hack.localcluster.controlplane import LocalCluster
from hack.localcluster.operator_process import OperatorProcess
from hack.media.encoder import FPS
from hack.media.harness import children, start_publisher, wait_for
from restream_operator.agent import contract

from .world import livestream_status, served_by_real_agents

pytestmark = [pytest.mark.cluster, pytest.mark.media, pytest.mark.timeout(180)]

SOURCE_GOP_S = 5
# Small and cheap (the source is hack/media/encoder.py's 640x360): the encode is real.
RENDITION = {"name": "240p", "video": {"height": 240, "fps": FPS, "bitrateKbps": 300,
             "keyframeIntervalSeconds": 2}, "audio": {"bitrateKbps": 64}}  # fmt: skip
YOUTUBE = "rtmp://a.rtmp.youtube.com/live2"
# Their relays do not run (they would need YouTube): their warnings are the operator's
# verdict on what they would receive.
ELSEWHERE = (
    {"name": "Youtube", "serverUrl": YOUTUBE, "streamKey": "never-used"},
    {"name": "YoutubeLow", "serverUrl": YOUTUBE, "streamKey": "never-used", "rendition": "240p"},
)


def test_the_operator_writes_the_measured_source_a_warning_and_the_renditions_status(
    cluster: LocalCluster, namespace: str, private_operator: OperatorProcess
) -> None:
    with served_by_real_agents(
        cluster, namespace, ELSEWHERE, renditions=(RENDITION,), on_rendition={"Two": "240p"}
    ) as world:
        assert set(world.encoders) == {"240p"}  # one encoder for Two and YoutubeLow

        def status() -> dict[str, Any]:
            return livestream_status(cluster, namespace)

        def entries(key: str) -> dict[str, dict[str, Any]]:
            return {e["name"]: e for e in status().get(key) or []}

        # Before a broadcast: the encoder's agent answers, nothing to encode yet.
        wait_for(lambda: entries("renditions").get("240p", {}).get("state") == "Idle",
                 "the rendition Idle", 20)  # fmt: skip
        assert entries("renditions")["240p"]["restreams"] == ["Two", "YoutubeLow"]

        start_publisher(world.procs, world.ingest, world.stream_key, gop=SOURCE_GOP_S * FPS)
        wait_for(
            lambda: (
                {n: e["state"] for n, e in entries("restreams").items() if n in world.relays}
                == {"One": "Live", "Two": "Live"}
            ),
            "One and Two Live",
            30,
        )
        # The encoder's measured output (its probe plays the rendition from the ingest;
        # a keyframe interval needs two intervals) and the source's (two 5 s intervals).
        wait_for(lambda: entries("renditions")["240p"].get("keyframeIntervalSeconds"),
                 "the rendition's measured output", 30)  # fmt: skip
        wait_for(lambda: status()["ingest"].get("video", {}).get("keyframeIntervalSeconds"),
                 "the measured source", 20)  # fmt: skip
        st = status()
        assert abs(st["ingest"]["video"]["keyframeIntervalSeconds"] - SOURCE_GOP_S) <= 0.1

        rendition = entries("renditions")["240p"]
        assert rendition["state"] == "Live", rendition
        assert (rendition["width"], rendition["height"]) == (426, 240)
        assert rendition["keyframeIntervalSeconds"] == 2.0
        wait_for(lambda: entries("renditions")["240p"].get("outputBitrateKbps"),
                 "the rendition's output bitrate", 10)  # fmt: skip

        restreams = entries("restreams")
        (warning,) = restreams["Youtube"]["warnings"]
        assert warning["rule"] == "KeyframeInterval"
        assert "every 5 s" in warning["message"] and "rendition '240p'" in warning["message"]
        assert warning["source"].startswith("https://support.google.com/youtube/")
        assert "warnings" not in restreams["YoutubeLow"]  # YouTube too, on 2 s keyframes
        assert "warnings" not in restreams["One"] and "warnings" not in restreams["Two"]

        # One encode, however many destinations: one libx264 under the encoder agent,
        # none under the relays.
        def x264(pid: int) -> int:
            return sum(b"libx264" in _cmdline(p) for p in children(pid))

        (encoder,) = world.encoders.values()
        assert encoder.proc is not None
        assert x264(encoder.proc.pid) == 1
        assert not any(x264(r.proc.pid) for r in world.relays.values() if r.proc)
        wait_for(lambda: world.sink.total_bytes("two") > 50_000, "the rendition at Two", 10)

        publish_key = contract.rendition_publish_key(world.token, "240p")
        for text in (json.dumps(status()), private_operator.logs()):
            for secret in (*world.secrets(), publish_key):
                assert secret not in text


def _cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""
