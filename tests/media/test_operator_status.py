"""The operator fills status from the real agents' /status documents (tests/media/
world.py: the local control plane, the pods' agents run here for real at the addresses
Kubernetes reports). An encoder then publishes for real.
"""

from __future__ import annotations

import json
import signal
from typing import Any

import pytest

from hack.localcluster import livestreams
from hack.localcluster.controlplane import LocalCluster
from hack.localcluster.operator_process import OperatorProcess
from hack.media.encoder import FPS
from hack.media.harness import (
    start_ertmp_publisher,
    start_publisher,
    wait_for,
)

from .world import livestream_status, served_by_real_agents

pytestmark = [pytest.mark.cluster, pytest.mark.media]


def test_status_follows_the_real_agents(
    cluster: LocalCluster, namespace: str, private_operator: OperatorProcess
) -> None:
    with served_by_real_agents(cluster, namespace) as world:
        procs, sink, ingest = world.procs, world.sink, world.ingest
        stream_key = world.stream_key

        def states() -> dict[str, str]:
            st = livestream_status(cluster, namespace)
            return {r["name"]: r["state"] for r in st.get("restreams", [])}

        def condition(type_: str) -> str | None:
            return livestreams.condition(livestream_status(cluster, namespace), type_)

        # No publisher: the agents say so, and status with them.
        wait_for(lambda: states() == {"One": "Idle", "Two": "Idle"}, "Idle restreams", 20)
        assert condition("Broadcasting") == "False"
        assert condition("Ready") == "True"

        publisher = start_publisher(procs, ingest, stream_key)
        wait_for(lambda: states() == {"One": "Live", "Two": "Live"}, "Live restreams", 30)
        wait_for(
            lambda: livestream_status(cluster, namespace).get("broadcasting"),
            "broadcasting",
            10,
        )
        st = livestream_status(cluster, namespace)
        assert st["liveRestreams"] == "2/2"
        assert st["broadcastStartedAt"]
        assert (st["ingest"]["videoCodec"], st["ingest"]["audioCodec"]) == ("H264", "AAC")
        assert livestreams.condition(st, "Relayable") == "True"
        wait_for(
            lambda: all(
                (r.get("bitrateKbps") or 0) > 100
                for r in livestream_status(cluster, namespace)["restreams"]
            ),
            "bitrates from the relays",
            15,
        )
        # What the encoder sends, as the ingest measured it (640x360, a keyframe a
        # second: hack/media/encoder.py's defaults).
        wait_for(
            lambda: (
                "keyframeIntervalSeconds"
                in livestream_status(cluster, namespace)["ingest"].get("video", {})
            ),
            "the measured source in status.ingest",
            15,
        )
        video = livestream_status(cluster, namespace)["ingest"]["video"]
        assert (video["width"], video["height"], video["frameRate"]) == (640, 360, FPS)
        assert video["keyframeIntervalSeconds"] == 1.0
        assert sink.total_bytes("one") > 0
        events = json.loads(cluster.kubectl("get", "events", "-n", namespace, "-o", "json").stdout)[
            "items"
        ]
        assert {"BroadcastStarted", "RestreamLive"} <= {e["reason"] for e in events}

        publisher.stop(signal.SIGINT)
        wait_for(
            lambda: livestream_status(cluster, namespace).get("broadcasting") is False,
            "broadcasting: false after the publisher stops",
            5 + 2,  # the 5 s, plus one status poll
        )
        st = livestream_status(cluster, namespace)
        assert st["broadcastEndedAt"]
        assert "Live" not in {r["state"] for r in st["restreams"]}
        assert "video" not in st["ingest"]  # measured of the broadcast that is on only

        # HEVC over Enhanced RTMP: named, and said plainly that it is not relayed.
        hevc = start_ertmp_publisher(procs, ingest.publish_url(), stream_key, "hevc")
        wait_for(lambda: condition("Relayable") == "False", "Relayable False for HEVC", 20)
        st = livestream_status(cluster, namespace)
        relayable = next(c for c in st["conditions"] if c["type"] == "Relayable")
        assert relayable["reason"] == "CodecNotRelayed"
        assert relayable["message"].startswith("the encoder publishes HEVC video over")
        assert st["ingest"]["videoCodec"] == "HEVC"
        wait_for(
            lambda: all(
                r["state"] == "Idle" and r.get("lastError") == relayable["message"]
                for r in livestream_status(cluster, namespace)["restreams"]
            ),
            "restreams waiting, saying why",
            20,
        )
        assert condition("RestreamsReady") == "False"
        hevc.stop(signal.SIGINT)
        for text in (json.dumps(st), private_operator.logs()):
            for secret in world.secrets():
                assert secret not in text


def test_a_youtube_destination_is_warned_of_the_encoders_five_second_keyframes(
    cluster: LocalCluster, namespace: str, private_operator: OperatorProcess
) -> None:
    """The encoder sends a keyframe every 5 s; YouTube says not to exceed 4. The ingest
    measures it from the stream, and the destination whose host is YouTube's is warned
    (with an Event), while the destinations on other hosts are not."""
    youtube = {"name": "Youtube", "serverUrl": "rtmp://a.rtmp.youtube.com/live2",
               "streamKey": "never-used"}  # fmt: skip
    with served_by_real_agents(cluster, namespace, (youtube,)) as world:
        start_publisher(world.procs, world.ingest, world.stream_key, gop=5 * FPS)

        def entry(name: str) -> dict[str, Any]:
            st = livestream_status(cluster, namespace)
            return next(r for r in st.get("restreams", []) if r["name"] == name)

        wait_for(lambda: entry("Youtube").get("warnings"), "a warning on Youtube", 30)
        st = livestream_status(cluster, namespace)
        assert abs(st["ingest"]["video"]["keyframeIntervalSeconds"] - 5.0) <= 0.1
        (warning,) = entry("Youtube")["warnings"]
        assert warning["rule"] == "KeyframeInterval"
        assert "every 4 s" in warning["message"] and "every 5 s" in warning["message"]
        assert warning["source"].startswith("https://support.google.com/youtube/")
        assert "warnings" not in entry("One") and "warnings" not in entry("Two")
        wait_for(
            lambda: (
                "PlatformRuleBroken"
                in cluster.kubectl("get", "events", "-n", namespace, "-o", "json").stdout
            ),
            "the PlatformRuleBroken Event",
            10,
        )
