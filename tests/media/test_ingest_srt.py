"""SRT ingest (spec.ingest.srt): an SRT listener whose passphrase is the stream key
publishes into the same nginx-rtmp application, so the relays see one stream whatever
protocol the encoder used.

One ingest rendered from examples/api-video-compatible.yaml with spec.ingest.srt set, one
relay to an nginx-rtmp sink; shared by this module's tests.
"""

from __future__ import annotations

import secrets
import signal
import subprocess
from collections.abc import Iterator

import pytest

from hack.media.encoder import gstreamer_argv
from hack.media.harness import (
    Proc,
    Processes,
    ProcessSampler,
    codecs_and_duration,
    flag,
    start_publisher,
    wait_for,
    workdir,
)
from restream_operator.agent import contract
from restream_operator.agent.redact import secret_forms

from .contribution import ContributionPlane, start_contribution_plane

pytestmark = [pytest.mark.media, pytest.mark.timeout(120)]

RELAY = "Youtube"
LATENCY_MS = 200


def srt_publisher_argv(url: str, seconds: float) -> list[str]:
    """ffmpeg sending the test pattern as MPEG-TS over SRT, as OBS does. The passphrase is
    in the URL: this process stands for the user's encoder, not the product."""
    return [
        "ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error",
        "-re", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25",
        "-re", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
        "-t", f"{seconds:g}",
        "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "25",
        "-b:v", "1200k", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "64k",
        "-f", "mpegts", url,
    ]  # fmt: skip


def publish_srt(plane: ContributionPlane, seconds: float, passphrase: str | None = None) -> Proc:
    url = plane.ingest.srt_url(passphrase or plane.stream_key, LATENCY_MS)
    return plane.procs.start("srt-publisher", srt_publisher_argv(url, seconds))


@pytest.fixture(scope="module")
def srt_plane() -> Iterator[ContributionPlane]:
    with workdir("restream-ingest-srt-") as root:
        procs = Processes(root)
        try:
            plane = start_contribution_plane(procs, root, {"srt": {"latencyMs": LATENCY_MS}})
            argv = plane.plan.ingest_command
            assert flag(argv, "--srt-listen") == f"0.0.0.0:{contract.SRT_PORT}"
            assert flag(argv, "--srt-latency-ms") == str(LATENCY_MS)
            yield plane
        finally:
            procs.close()


def test_ffmpeg_publishes_over_srt_with_the_key_as_passphrase(srt_plane: ContributionPlane) -> None:
    seconds = 6.0
    assert srt_plane.ingest.proc is not None
    agent = srt_plane.ingest.proc.pid
    with ProcessSampler(lambda: [agent]) as seen:
        pub = publish_srt(srt_plane, seconds)
        (recording,) = srt_plane.broadcast(pub, "ffmpeg over SRT", "SRT")
    codecs, duration = codecs_and_duration(recording)
    print(f"SRT via ffmpeg: {codecs}, {duration:.2f} s of {seconds} s at the destination")
    assert codecs == {"h264", "aac"}
    assert duration >= seconds - 2.0
    # The listener ran (ffmpeg, a child of the agent), and no command line held the key.
    assert any("srt" in line and "ffmpeg" in line for line in seen.cmdlines.values()), seen.cmdlines
    forms = secret_forms(srt_plane.stream_key)
    assert not any(f in line for line in seen.cmdlines.values() for f in forms)
    assert srt_plane.ingest_status()["srtError"] is None


def test_a_wrong_passphrase_is_refused(srt_plane: ContributionPlane) -> None:
    wrong = publish_srt(srt_plane, 3, passphrase=f"wrong-{secrets.token_hex(8)}")
    assert wrong.popen.wait(10) != 0
    assert srt_plane.ingest_status()["publishing"] is False
    none = srt_plane.procs.start("srt-publisher", srt_publisher_argv(srt_plane.ingest.srt_url(), 3))
    assert none.popen.wait(10) != 0, "a caller without a passphrase must be refused"
    assert srt_plane.ingest_status()["publishing"] is False


def test_gstreamer_srtsink_publishes(srt_plane: ContributionPlane) -> None:
    argv = gstreamer_argv(
        srt_plane.ingest.srt_url(),
        125,
        sink_options=[f"passphrase={srt_plane.stream_key}", f"latency={LATENCY_MS}"],
    )
    pub = srt_plane.procs.start("gstreamer-srt", argv)
    recordings = srt_plane.broadcast(pub, "GStreamer over SRT", "SRT")
    assert recordings
    codecs, duration = codecs_and_duration(recordings[-1])
    print(f"SRT via GStreamer: {codecs}, {duration:.2f} s at the destination")
    assert codecs == {"h264", "aac"}


def test_one_publisher_at_a_time_across_protocols(srt_plane: ContributionPlane) -> None:
    srt = publish_srt(srt_plane, 12)
    wait_for(lambda: srt_plane.ingest_status()["publishing"], "SRT to publish", 10)
    rtmp = start_publisher(srt_plane.procs, srt_plane.ingest, srt_plane.stream_key, 5)
    assert rtmp.popen.wait(5) != 0, "RTMP must be refused while SRT is live"
    assert srt_plane.ingest_status()["clientProtocol"] == "SRT"
    assert srt.alive()
    srt.stop(signal.SIGINT)
    wait_for(lambda: not srt_plane.ingest_status()["publishing"], "the SRT broadcast to end", 10)

    rtmp = start_publisher(srt_plane.procs, srt_plane.ingest, srt_plane.stream_key, 12)
    wait_for(lambda: srt_plane.ingest_status()["publishing"], "RTMP to publish", 10)
    second = publish_srt(srt_plane, 5)
    # The listener takes the caller, its publish into nginx-rtmp is refused (busy), and
    # the caller is cut off.
    try:
        code = second.popen.wait(15)
    except subprocess.TimeoutExpired:
        code = None
    assert code != 0, "SRT must be refused while RTMP is live"
    doc = srt_plane.ingest_status()
    assert doc["publishing"] is True and doc["clientProtocol"] == "RTMP"
    assert rtmp.alive()
    rtmp.stop(signal.SIGINT)
    wait_for(lambda: not srt_plane.ingest_status()["publishing"], "the broadcast to end", 10)
    wait_for(lambda: srt_plane.relay_state() == "Idle", "the relay to be Idle", 15)
