"""Every destination gets every track, from the broadcast's first keyframe (issue 14).

Real nginx-rtmp (the ingest's rendered config), the relay agents with real ffmpeg, and
two nginx-rtmp sinks recording what they receive, on 127.0.0.1 (hack/media/plane.py). The
encoders stress what broke before: GStreamer's x264enc with B-frames and lookahead (its
first audio comes after its first keyframe), ffmpeg with the same settings, audio that
starts late, one-track publishes. What each sink recorded is read back with ffprobe.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from hack.media.harness import (
    Proc,
    Processes,
    start_gstreamer,
    start_publisher,
    wait_for,
    workdir,
)
from hack.media.plane import (
    DESTINATIONS,
    RecordingPlane,
    broadcast,
    first_media_delays,
    new_recordings,
    start_plane,
    tracks,
)
from restream_operator.agent.ffmpeg import TRACK_WAIT_US

pytestmark = [pytest.mark.media, pytest.mark.timeout(400)]

FPS = 25
BROADCASTS = 20


@pytest.fixture(scope="module")
def plane() -> Iterator[RecordingPlane]:
    with workdir("restream-tracks-") as root:
        procs = Processes(root)
        try:
            yield start_plane(procs, root)
        finally:
            procs.close()


def _gstreamer(p: RecordingPlane, frames: int, **options: Any) -> Callable[[], Proc]:
    return lambda: start_gstreamer(p.procs, p.ingest, p.stream_key, frames, **options)


def _ffmpeg(p: RecordingPlane, frames: int, **options: Any) -> Callable[[], Proc]:
    return lambda: start_publisher(p.procs, p.ingest, p.stream_key, frames / FPS, **options)


def _complete(found: dict[str, dict[str, Any]], frames: int, kinds: set[str]) -> bool:
    """The recording has exactly these tracks, each for the whole broadcast (within half a
    second), and every video frame the encoder made, from its first keyframe."""
    whole = all(t["span"] > frames / FPS - 0.5 for t in found.values())
    video = found.get("video", {})
    frames_ok = "video" not in kinds or (video["packets"] == frames and video["first_key"])
    return set(found) == kinds and whole and frames_ok


def test_twenty_gstreamer_broadcasts_with_bframes_keep_every_track_and_frame(
    plane: RecordingPlane,
) -> None:
    """x264enc bframes=3 rc-lookahead=40, profile high (its first audio comes after its
    first keyframe), 3 s each: 20 of 20 recordings at each destination complete."""
    frames = 3 * FPS
    results = []
    for _ in range(BROADCASTS):
        got = broadcast(plane, _gstreamer(plane, frames))
        results += [(name, tracks(path)) for name, path in got.items()]
    incomplete = [r for r in results if not _complete(r[1], frames, {"video", "audio"})]
    assert len(results) == BROADCASTS * len(DESTINATIONS)
    assert incomplete == [], f"{len(incomplete)} of {len(results)} incomplete"


def test_ffmpeg_broadcasts_with_bframes_keep_every_track_and_frame(plane: RecordingPlane) -> None:
    frames = 3 * FPS
    results = []
    for _ in range(5):
        got = broadcast(plane, _ffmpeg(plane, frames, bframes=True))
        results += [(name, tracks(path)) for name, path in got.items()]
    incomplete = [r for r in results if not _complete(r[1], frames, {"video", "audio"})]
    assert incomplete == [], f"{len(incomplete)} of {len(results)} incomplete"


def test_first_media_reaches_every_destination_within_a_second_at_a_4s_gop(
    plane: RecordingPlane,
) -> None:
    """The relays wait on the stream before the broadcast: the first keyframe reaches
    them, and no destination waits for the second one (4 s later)."""
    frames = 8 * FPS
    delays, encoder = first_media_delays(plane, _ffmpeg(plane, frames, gop=4 * FPS, bframes=True))
    wait_for(lambda: not encoder.alive(), "the encoder to finish", 20)
    plane.wait_all("Idle", 15)
    print(f"first media after the first packet: {delays}")
    assert all(d <= 1.0 for d in delays.values()), delays
    for name, paths in plane.recordings().items():
        got = tracks(paths[-1])
        assert _complete(got, frames, {"video", "audio"}), (name, got)


def test_audio_that_starts_late_is_waited_for(plane: RecordingPlane) -> None:
    frames = 4 * FPS
    recorded = broadcast(plane, _ffmpeg(plane, frames, audio_delay_s=1.0))
    for name, path in recorded.items():
        got = tracks(path)
        assert set(got) == {"video", "audio"}, (name, got)
        assert got["video"]["packets"] == frames and got["video"]["first_key"], got


def test_audio_later_than_the_wait_is_picked_up_by_a_reconnect(plane: RecordingPlane) -> None:
    """Later than the relay waits for a track, ffmpeg would drop it for the whole
    broadcast: the relay reconnects instead, says why, and the destination gets both."""
    late = TRACK_WAIT_US / 1e6 + 1.5
    before = plane.recordings()
    restarts = {name: plane.relay_status(name)["restarts"] for name in DESTINATIONS}
    plane.wait_all("Idle", 15)
    encoder = _ffmpeg(plane, 12 * FPS, audio_delay_s=late)()
    try:
        wait_for(
            lambda: all(plane.relay_status(n)["restarts"] > restarts[n] for n in DESTINATIONS),
            "every relay to reconnect for the late audio",
            15,
        )
        for name in DESTINATIONS:
            error = plane.relay_status(name)["lastError"] or ""
            assert "audio began more than" in error, error
        plane.wait_all("Live", 15)
        wait_for(lambda: not encoder.alive(), "the encoder to finish", 20)
    finally:
        encoder.stop(signal.SIGINT)
    plane.wait_all("Idle", 15)
    for files in new_recordings(plane, before).values():
        got = tracks(files[-1])
        assert set(got) == {"video", "audio"} and got["video"]["first_key"], got


def test_a_video_only_publish_is_relayed(plane: RecordingPlane) -> None:
    frames = 4 * FPS
    got = broadcast(plane, _gstreamer(plane, frames, audio=False))
    for name, path in got.items():
        assert _complete(tracks(path), frames, {"video"}), name


def test_an_audio_only_publish_is_reported_not_relayed(plane: RecordingPlane) -> None:
    """nginx holds audio until video comes (it must, for relays that join a broadcast under
    way to get both tracks at once), and the platforms refuse audio alone: each relay says
    so instead of blaming the destination."""
    encoder = _gstreamer(plane, 30 * FPS, video=False)()
    try:

        def told() -> bool:
            errors = [plane.relay_status(n)["lastError"] or "" for n in DESTINATIONS]
            return all("no video" in e for e in errors)

        wait_for(told, "every relay to say there is no video", 30)
        assert "Live" not in plane.states().values()
    finally:
        encoder.stop(signal.SIGINT)
    plane.wait_all("Idle", 15)
