"""The ingest's measurements of what the encoder sends (agent/source.py).

The parameter sets are real x264 output, captured with
``ffmpeg -f lavfi -i testsrc2=size=WxH:rate=30 -frames:v 1 -c:v libx264 -profile:v P
-f h264`` (the first NAL unit after the start code); the AudioSpecificConfigs are
ffmpeg's AAC encoder's at 48 and 44.1 kHz.
"""

from __future__ import annotations

import pytest

from restream_operator.agent.source import (
    Source,
    aac_config,
    avc_resolution,
    snapped_rate,
    sps_resolution,
)

X264_SPS = {
    # 720 = 45 macroblock rows exactly: no cropping.
    (1280, 720, "high"): "6764001facd9405005bb0110000003001000000303c0f1831960",
    # 1080 is coded as 1088 and cropped by 8 (in 4:2:0, 2 lines a unit).
    (1920, 1080, "high"): "67640028acd940780227e5c044000003000400000300f03c60c658",
    (640, 360, "baseline"): "6742c01ed900a02ff970110000030001000003003c0f162e48",
    # 854 is not a multiple of 16: cropped on the right.
    (854, 480, "main"): "674d401feca06c1ef3780880000003008000001e078c18cb",
}


@pytest.mark.parametrize(("size", "sps"), X264_SPS.items(), ids=str)
def test_the_resolution_is_read_from_x264_parameter_sets(
    size: tuple[int, int, str], sps: str
) -> None:
    width, height, _ = size
    assert sps_resolution(bytes.fromhex(sps)) == (width, height)


def avc_sequence_header(sps: bytes) -> bytes:
    """An FLV video tag body: keyframe + AVC, packet type 0, then the decoder
    configuration record with one SPS (and one empty-enough PPS)."""
    record = bytes([1, sps[1], sps[2], sps[3], 0xFF, 0xE1]) + len(sps).to_bytes(2, "big") + sps
    record += bytes([1, 0, 4, 0x68, 0xEB, 0xE3, 0xCB])
    return bytes([0x17, 0, 0, 0, 0]) + record


def test_a_malformed_parameter_set_is_no_resolution_and_no_exception() -> None:
    sps = bytes.fromhex(X264_SPS[(1280, 720, "high")])
    assert avc_resolution(avc_sequence_header(sps)[5:]) == (1280, 720)
    for broken in (b"", b"\x01", avc_sequence_header(sps[:6])[5:], b"\x01\x64\x00\x1f\xff\xe0"):
        assert avc_resolution(broken) is None
    with pytest.raises(ValueError, match="ends early"):
        sps_resolution(sps[:5])
    with pytest.raises(ValueError, match="Exp-Golomb"):
        sps_resolution(b"\x67\x64\x00\x1f" + b"\x00" * 8)


def test_aac_sample_rate_and_channels() -> None:
    assert aac_config(bytes.fromhex("1190")) == (48000, 2)
    assert aac_config(bytes.fromhex("1210")) == (44100, 2)
    assert aac_config(bytes.fromhex("1188")) == (48000, 1)
    assert aac_config(b"\x11") is None  # cut short
    assert aac_config(bytes.fromhex("17f0")) is None  # a reserved rate index


def test_frame_rates_snap_to_the_rates_people_set() -> None:
    assert snapped_rate(29.99) == 30.0
    assert snapped_rate(29.96) == 29.97
    assert snapped_rate(59.9) == 59.94
    assert snapped_rate(25.02) == 25.0
    assert snapped_rate(17.3) == 17.3  # a rate of its own is kept as measured


def feed(
    source: Source, seconds: float, fps: float, gop_s: float, kbps: int, start_ms: int = 0
) -> None:
    """``seconds`` of a broadcast: video frames of the size ``kbps`` makes, a keyframe
    every ``gop_s``, AAC frames (1024 samples at 48 kHz) at 128 kbit/s, timestamps in
    whole milliseconds as RTMP has them."""
    sps = bytes.fromhex(X264_SPS[(1280, 720, "high")])
    source.on_video(avc_sequence_header(sps), start_ms)
    source.on_audio(bytes([0xAF, 0x00, 0x11, 0x90]), start_ms)
    frame_bytes = round(kbps * 1000 / 8 / fps)
    gop = round(gop_s * fps)
    audio_bytes = round(128_000 / 8 * 1024 / 48_000)
    events = [
        (start_ms + round(i * 1000 / fps), "v", i)
        for i in range(round(seconds * fps))
    ] + [
        (start_ms + round(i * 1024_000 / 48_000), "a", i)
        for i in range(round(seconds * 48_000 / 1024))
    ]  # fmt: skip
    for ts, kind, i in sorted(events):
        if kind == "v":
            head = 0x17 if i % gop == 0 else 0x27
            source.on_video(bytes([head, 1, 0, 0, 0]) + bytes(frame_bytes - 5), ts & 0xFFFFFFFF)
        else:
            source.on_audio(bytes([0xAF, 1]) + bytes(audio_bytes - 2), ts & 0xFFFFFFFF)


def test_a_broadcast_is_measured_from_its_messages() -> None:
    source = Source()
    assert source.video_status() == {
        "width": None, "height": None, "frameRate": None,
        "keyframeIntervalSeconds": None, "bitrateKbps": None,
    }  # fmt: skip
    feed(source, seconds=20, fps=30, gop_s=5, kbps=4000)
    video = source.video_status()
    assert (video["width"], video["height"]) == (1280, 720)
    assert video["frameRate"] == 30.0
    assert video["keyframeIntervalSeconds"] == 5.0
    assert video["bitrateKbps"] is not None and abs(video["bitrateKbps"] - 4000) <= 40
    audio = source.audio_status()
    assert (audio["sampleRateHz"], audio["channels"]) == (48000, 2)
    assert audio["bitrateKbps"] is not None and abs(audio["bitrateKbps"] - 128) <= 2


def test_ntsc_rates_and_a_changed_gop_are_followed() -> None:
    source = Source()
    feed(source, seconds=12, fps=30000 / 1001, gop_s=2, kbps=2500)
    assert source.video_status()["frameRate"] == 29.97
    assert source.video_status()["keyframeIntervalSeconds"] == 2.0
    # The encoder's GOP goes to 4 s: the median follows once most kept intervals are 4 s.
    feed(source, seconds=24, fps=30000 / 1001, gop_s=4, kbps=2500, start_ms=12_000)
    assert source.video_status()["keyframeIntervalSeconds"] == 4.0


def test_timestamps_that_wrap_after_49_days_are_measured_across_the_wrap() -> None:
    source = Source()
    feed(source, seconds=12, fps=25, gop_s=2, kbps=1000, start_ms=(1 << 32) - 6_000)
    video = source.video_status()
    assert video["frameRate"] == 25.0
    assert video["keyframeIntervalSeconds"] == 2.0
    assert video["bitrateKbps"] is not None and abs(video["bitrateKbps"] - 1000) <= 10


def test_mp3_rate_comes_from_the_tag_header() -> None:
    source = Source()
    # MP3 (format 2), 44 kHz, 16-bit, stereo: 0x2F.
    for i in range(100):
        source.on_audio(bytes([0x2F]) + bytes(400), i * 26)
    audio = source.audio_status()
    assert (audio["sampleRateHz"], audio["channels"]) == (44100, 2)
    assert audio["bitrateKbps"] == round(401 * 99 * 8 / (99 * 26))
