"""What codec a media message or an onMetaData names, what is relayed, and the probe's
account of tracks, on bytes."""

from __future__ import annotations

import pytest

from restream_operator.agent import codecs, contract, rtmp
from restream_operator.agent.codecs import Codec
from restream_operator.agent.probe import Findings, missing_text


def ex_video(frame_type: int, packet_type: int, fourcc: bytes, body: bytes = b"\x00") -> bytes:
    return bytes((0x80 | frame_type << 4 | packet_type,)) + fourcc + body


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b"\x17\x00\x00\x00\x00", Codec("H264")),  # AVC keyframe, sequence header
        (b"\x27\x01\x00\x00\x00", Codec("H264")),  # AVC inter frame
        (b"\x12", Codec("Sorenson-H263")),
        (b"\x14", Codec("On2-VP6")),
        (b"\x1c", Codec("video codec id 12")),  # the unofficial "HEVC in FLV" id
        (ex_video(1, 0, b"hvc1"), Codec("HEVC", enhanced=True)),  # SequenceStart
        (ex_video(1, 1, b"hvc1"), Codec("HEVC", enhanced=True)),  # CodedFrames
        (ex_video(2, 3, b"hvc1"), Codec("HEVC", enhanced=True)),  # CodedFramesX ("ScreenVideo")
        (ex_video(1, 0, b"av01"), Codec("AV1", enhanced=True)),
        (ex_video(2, 1, b"av01"), Codec("AV1", enhanced=True)),
        (ex_video(1, 0, b"vp09"), Codec("VP9", enhanced=True)),
        (ex_video(2, 1, b"vp09"), Codec("VP9", enhanced=True)),
        (ex_video(1, 2, b"hvc1", b""), Codec("HEVC", enhanced=True)),  # SequenceEnd
        (ex_video(1, 0, b"avc1"), Codec("H264", enhanced=True)),  # v2: H.264 by FourCC
        (ex_video(1, 1, b"xyz9"), Codec("FourCC 'xyz9'", enhanced=True)),
        (ex_video(0, 4, b"hvc1"), None),  # PacketTypeMetadata: HDR info, not a frame
        (b"\x91hv", None),  # truncated FourCC
        (b"", None),
    ],
)
def test_video_codec_of_a_message(payload: bytes, expected: Codec | None) -> None:
    assert codecs.video_codec(payload) == expected


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b"\xaf\x00\x12\x10", Codec("AAC")),
        (b"\x2f", Codec("MP3")),
        (b"\xb6", Codec("Speex")),
        (b"\xe2", Codec("MP3-8K")),
        (b"\x9fOpus", Codec("Opus", enhanced=True)),  # v2 ExHeader audio
        (b"\x90fLaC", Codec("FLAC", enhanced=True)),
        (b"\x90ac-3", Codec("AC3", enhanced=True)),
        (b"\x90mp4a", Codec("AAC", enhanced=True)),
        (b"\x90Op", None),
        (b"", None),
    ],
)
def test_audio_codec_of_a_message(payload: bytes, expected: Codec | None) -> None:
    assert codecs.audio_codec(payload) == expected


FOURCC = {
    name: float(int.from_bytes(name.encode(), "big")) for name in ("hvc1", "av01", "vp09", "Opus")
}


@pytest.mark.parametrize(
    ("video", "audio", "expected"),
    [
        (7.0, 10.0, (Codec("H264"), Codec("AAC"))),
        (FOURCC["hvc1"], 10.0, (Codec("HEVC", enhanced=True), Codec("AAC"))),  # OBS 30
        (1635135537.0, 2.0, (Codec("AV1", enhanced=True), Codec("MP3"))),  # the spec's 'av01'
        (
            FOURCC["vp09"],
            FOURCC["Opus"],
            (Codec("VP9", enhanced=True), Codec("Opus", enhanced=True)),
        ),
        ("hvc1", "mp4a", (Codec("HEVC", enhanced=True), Codec("AAC", enhanced=True))),
        ("avc1", None, (Codec("H264", enhanced=True), None)),
        (0.0, 0.0, (None, None)),  # nginx-rtmp's rebuilt metadata: 0 for no track
        (None, None, (None, None)),
        (True, "", (None, None)),
        (12.0, 99.0, (Codec("video codec id 12"), Codec("audio codec id 99"))),
    ],
)
def test_announced_codecs(video: object, audio: object, expected: tuple[object, object]) -> None:
    assert (codecs.announced_video(video), codecs.announced_audio(audio)) == expected


FIX_VIDEO = "set the encoder's video codec to H.264 (x264 or NVENC H.264)"


@pytest.mark.parametrize(
    ("video", "audio", "reason"),
    [
        (Codec("H264"), Codec("AAC"), None),
        (Codec("H264"), Codec("MP3"), None),
        (Codec("H264"), None, None),  # video only
        (None, Codec("AAC"), None),  # audio only
        (None, None, None),  # nothing known: not held against it
        (
            Codec("HEVC", enhanced=True),
            Codec("AAC"),
            "the encoder publishes HEVC video over Enhanced RTMP; this release relays H.264"
            f" video with AAC or MP3 audio, over classic RTMP: {FIX_VIDEO}",
        ),
        (
            Codec("AV1", enhanced=True),
            Codec("Opus", enhanced=True),
            "the encoder publishes AV1 video over Enhanced RTMP and Opus audio over Enhanced"
            " RTMP; this release relays H.264 video with AAC or MP3 audio, over classic RTMP:"
            f" {FIX_VIDEO} and set the encoder's audio codec to AAC",
        ),
        (
            Codec("H264", enhanced=True),  # even H.264, when signalled by FourCC
            None,
            "the encoder publishes H264 video over Enhanced RTMP; this release relays H.264"
            f" video with AAC or MP3 audio, over classic RTMP: {FIX_VIDEO}",
        ),
        (
            Codec("H264"),
            Codec("Speex"),
            "the encoder publishes Speex audio; this release relays H.264 video with AAC or"
            " MP3 audio, over classic RTMP: set the encoder's audio codec to AAC",
        ),
    ],
)
def test_what_is_not_relayed_and_why(
    video: Codec | None, audio: Codec | None, reason: str | None
) -> None:
    assert codecs.not_relayed(video, audio) == reason


def _msg(type_id: int, payload: bytes) -> rtmp.Message:
    return rtmp.Message(type_id, 1, 0, payload)


def _meta(video: float | None, audio: float | None) -> rtmp.Message:
    meta = rtmp.AmfObject()
    if video is not None:
        meta["videocodecid"] = video
    if audio is not None:
        meta["audiocodecid"] = audio
    return _msg(rtmp.DATA_AMF0, rtmp.amf0_encode("onMetaData", meta))


def test_findings_arrived_beats_announced_and_missing_tracks_have_bounds() -> None:
    f = Findings(played_at=100.0)
    assert f.on_message(_meta(7.0, 10.0), 100.0)
    assert not f.on_message(_meta(7.0, 10.0), 100.1)  # the same again changes nothing
    assert f.relayable() is True and f.missing(100.0 + contract.VIDEO_TRACK_TIMEOUT - 0.1) == []
    # Video never comes (a keyframe interval and more): missing; audio waits on video.
    assert f.missing(100.0 + contract.VIDEO_TRACK_TIMEOUT) == ["video", "audio"]
    assert f.on_message(_msg(rtmp.VIDEO, b"\x17\x01"), 103.0)
    assert f.video.arrived == Codec("H264") and f.video_at == 103.0
    assert f.next_deadline(103.0) == 103.0 + contract.TRACK_TIMEOUT
    assert f.missing(103.0 + contract.TRACK_TIMEOUT - 0.1) == []
    assert f.missing(103.0 + contract.TRACK_TIMEOUT) == ["audio"]
    assert f.on_message(_msg(rtmp.AUDIO, b"\xaf\x01"), 109.0)
    assert f.missing(200.0) == [] and f.next_deadline(109.0) is None
    assert f.video.status() == {"announced": "H264", "arrived": "H264", "enhanced": False}


def test_findings_of_an_enhanced_rtmp_publish_through_nginx() -> None:
    """Only onMetaData reaches a player of nginx-rtmp: the FourCC names the codec."""
    f = Findings(played_at=0.0)
    assert f.relayable() is None and f.not_relayed() is None
    f.on_message(_meta(FOURCC["hvc1"], 10.0), 0.0)
    assert f.relayable() is False and f.not_relayed() is not None
    assert f.video.status() == {"announced": "HEVC", "arrived": None, "enhanced": True}
    # A frame that does arrive (a server that forwards it) confirms it.
    f.on_message(_msg(rtmp.VIDEO, ex_video(1, 0, b"hvc1")), 1.0)
    assert f.video.arrived == Codec("HEVC", enhanced=True)


def test_audio_only_is_judged_from_the_play_and_unannounced_tracks_are_not_missing() -> None:
    f = Findings(played_at=0.0)
    f.on_message(_meta(None, 10.0), 0.0)
    assert f.missing(contract.TRACK_TIMEOUT) == ["audio"]
    g = Findings(played_at=0.0)
    g.on_message(_meta(7.0, None), 0.0)
    g.on_message(_msg(rtmp.VIDEO, b"\x17\x01"), 1.0)
    assert g.missing(1000.0) == []
    assert Findings().missing(1000.0) == []  # not playing: nothing is judged


def test_missing_tracks_in_words() -> None:
    assert missing_text(["audio"]) == "the encoder announced audio but has sent none for 5 s"
    assert missing_text(["video"]) == "the encoder announced video but has sent none for 12 s"
    assert missing_text(["video", "audio"]) == (
        "the encoder announced video and audio but has sent neither for 12 s"
    )
