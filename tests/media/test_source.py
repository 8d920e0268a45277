"""The ingest measures what a real encoder sends: ffmpeg publishing 1280x720 at 30 fps
with a keyframe every 5 s at about 4 Mbit/s and AAC audio, to the real nginx-rtmp ingest
and its agent (as `restream-operator render` renders them), on 127.0.0.1. The encoder
announces none of these figures that the agent uses: they come from the stream.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from hack.media.harness import (
    Processes,
    StatusLog,
    example,
    render,
    rendered,
    start_ingest,
    start_publisher,
    wait_for,
    workdir,
)

pytestmark = [pytest.mark.media, pytest.mark.timeout(120)]


@pytest.fixture
def env() -> Iterator[tuple[Processes, Path]]:
    with workdir("restream-source-") as root:
        procs = Processes(root)
        try:
            yield procs, root
        finally:
            procs.close()


def test_the_ingest_reports_what_the_encoder_really_sends(env: tuple[Processes, Path]) -> None:
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
