"""Which codec an RTMP media message or an onMetaData entry names, and what is relayed.

Classic FLV (video file format 10.1, E.4.2.1 and E.4.3.1) names the codec in the first
byte's low nibble (video) or high nibble (audio). Enhanced RTMP (veovera, v1 for video, v2
for audio) sets the video byte's top bit (IsExHeader): the low nibble becomes a
PacketType and a FourCC follows (``hvc1``, ``av01``, ``vp09``); audio uses SoundFormat 9
(ExHeader) the same way. nginx-rtmp and Debian's ffmpeg 5.1 predate it: nginx reads the
PacketType as a codec id (CodedFramesX = 3 is "ScreenVideo" in its stat page).

The names are nginx-rtmp's stat spellings (``H264``, ``AAC``, ``MP3``), so an ingest's
``videoCodec``/``audioCodec`` mean the same whichever of nginx or the probe said them;
Enhanced RTMP codecs get their usual names (``HEVC``, ``AV1``, ``VP9``, ``Opus``...).

What this release relays, and why no more: the relays copy what the ingest plays them
(``ffmpeg -c copy``) into FLV (RTMP, RTMPS) or MPEG-TS (SRT). Debian's ffmpeg 5.1 FLV
demuxer and muxer know classic codec ids only, and nginx-rtmp forwards no Enhanced RTMP
video to players at all (its ``wait_key`` reads the frame type from the top nibble, where
Enhanced RTMP's IsExHeader bit makes every keyframe look like type 9, so nothing ever
starts). Relayed, tested end to end: H.264 video with AAC or MP3 audio.
"""

from __future__ import annotations

from dataclasses import dataclass

# nginx-rtmp's names for the classic ids (ngx_rtmp_codec_module.c).
VIDEO_CODEC_IDS = {
    1: "Jpeg",
    2: "Sorenson-H263",
    3: "ScreenVideo",
    4: "On2-VP6",
    5: "On2-VP6-Alpha",
    6: "ScreenVideo2",
    7: "H264",
}
AUDIO_SOUND_FORMATS = {
    0: "LinearPE",
    1: "ADPCM",
    2: "MP3",
    3: "LinearLE",
    4: "Nellymoser16",
    5: "Nellymoser8",
    6: "Nellymoser",
    7: "G711A",
    8: "G711U",
    10: "AAC",
    11: "Speex",
    14: "MP3-8K",
    15: "DeviceSpecific",
}
VIDEO_FOURCCS = {"hvc1": "HEVC", "av01": "AV1", "vp09": "VP9", "avc1": "H264"}
AUDIO_FOURCCS = {
    "Opus": "Opus",
    "fLaC": "FLAC",
    "ac-3": "AC3",
    "ec-3": "EAC3",
    ".mp3": "MP3",
    "mp4a": "AAC",
}
AUDIO_EX_HEADER = 9
VIDEO_EX_HEADER_BIT = 0x80
VIDEO_PACKET_METADATA = 4  # carries HDR metadata, not a frame: says nothing of arrival

RELAYED_VIDEO = ("H264",)
RELAYED_AUDIO = ("AAC", "MP3")
RELAYED = "H.264 video with AAC or MP3 audio, over classic RTMP"
# What to set in the encoder instead (OBS's and most encoders' words).
VIDEO_FIX = "set the encoder's video codec to H.264 (x264 or NVENC H.264)"
AUDIO_FIX = "set the encoder's audio codec to AAC"


@dataclass(frozen=True)
class Codec:
    """A codec as one message or announcement names it."""

    name: str
    enhanced: bool = False  # signalled with Enhanced RTMP's FourCC

    def spoken(self, kind: str) -> str:
        """``HEVC video over Enhanced RTMP``, ``Speex audio``."""
        return f"{self.name} {kind}" + (" over Enhanced RTMP" if self.enhanced else "")


def fourcc(raw: bytes) -> str:
    return raw.decode("latin-1")


def video_codec(payload: bytes) -> Codec | None:
    """The codec of one video message; None for an empty one or an Enhanced RTMP
    metadata packet (which is no frame)."""
    if not payload:
        return None
    first = payload[0]
    if first & VIDEO_EX_HEADER_BIT:
        if first & 0x0F == VIDEO_PACKET_METADATA or len(payload) < 5:
            return None
        code = fourcc(payload[1:5])
        return Codec(VIDEO_FOURCCS.get(code, f"FourCC {code!r}"), enhanced=True)
    codec_id = first & 0x0F
    return Codec(VIDEO_CODEC_IDS.get(codec_id, f"video codec id {codec_id}"))


def audio_codec(payload: bytes) -> Codec | None:
    if not payload:
        return None
    sound_format = payload[0] >> 4
    if sound_format == AUDIO_EX_HEADER:
        if len(payload) < 5:
            return None
        code = fourcc(payload[1:5])
        return Codec(AUDIO_FOURCCS.get(code, f"FourCC {code!r}"), enhanced=True)
    return Codec(AUDIO_SOUND_FORMATS.get(sound_format, f"audio codec id {sound_format}"))


def _fourcc_of_number(value: float) -> str | None:
    """A FourCC carried as a number (the spec: 'av01' == 0x61763031 == 1635135537.0)."""
    n = int(value)
    if n != value or not 0x20202020 <= n <= 0x7E7E7E7E:
        return None
    text = n.to_bytes(4, "big").decode("latin-1")
    return text if text.isprintable() else None


def announced_video(value: object) -> Codec | None:
    """``videocodecid`` of an onMetaData: a classic id, a FourCC as a number (OBS) or a
    string. 0 or absent: nothing announced (nginx-rtmp's rebuilt metadata writes 0)."""
    return _announced(value, VIDEO_CODEC_IDS, VIDEO_FOURCCS, "video")


def announced_audio(value: object) -> Codec | None:
    return _announced(value, AUDIO_SOUND_FORMATS, AUDIO_FOURCCS, "audio")


def _announced(
    value: object, ids: dict[int, str], fourccs: dict[str, str], kind: str
) -> Codec | None:
    if isinstance(value, str):
        if value in fourccs:
            return Codec(fourccs[value], enhanced=True)
        return Codec(value) if value else None
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return None
    code = _fourcc_of_number(float(value))
    if code is not None:
        return Codec(fourccs.get(code, f"FourCC {code!r}"), enhanced=True)
    n = int(value)
    return Codec(ids.get(n, f"{kind} codec id {n}"))


def not_relayed(video: Codec | None, audio: Codec | None) -> str | None:
    """Why a publish with these codecs cannot be relayed, in words; None when it can
    (as far as these say: an unknown track is not held against it)."""
    problems, fixes = [], []
    # Enhanced RTMP is not relayed whatever it carries (even its 'avc1' or '.mp3').
    if video is not None and (video.enhanced or video.name not in RELAYED_VIDEO):
        problems.append(video.spoken("video"))
        fixes.append(VIDEO_FIX)
    if audio is not None and (audio.enhanced or audio.name not in RELAYED_AUDIO):
        problems.append(audio.spoken("audio"))
        fixes.append(AUDIO_FIX)
    if not problems:
        return None
    return (
        f"the encoder publishes {' and '.join(problems)}; this release relays {RELAYED}: "
        + " and ".join(fixes)
    )
