"""What the big platforms say they accept, as data, and the check of a stream against it.

Each rule is the platform's own published limit, with the page that states it. A
destination whose server URL's host belongs to a platform gets a warning on its status
(and an Event) while the stream it receives breaks one of that platform's rules: the
platform may refuse it, cut it, or degrade it, and says so only in its own dashboard,
often after the event has started. The stream checked is what the ingest measured of the
encoder's publish (status.ingest.video/audio) for a destination that receives the source,
and the rendition's profile (spec.renditions[]) for one that receives a rendition: what
the encoder of that rendition is told to make, exactly (its keyframes are forced).

A warning says what would fix it: a rendition of the spec that meets every rule of the
platform, or, when none does, a profile to add.

Limits are checked with a small tolerance (``*_TOLERANCE``), so that a stream set exactly
at a limit does not flicker in and out of a warning with the measurement's noise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from .models import Rendition

KEYFRAME_TOLERANCE_SECONDS = 0.1
BITRATE_TOLERANCE = 0.05

YOUTUBE_SOURCE = "https://support.google.com/youtube/answer/2853702"
TWITCH_SOURCE = "https://help.twitch.tv/s/article/broadcast-requirements"
FACEBOOK_SOURCE = "https://developers.facebook.com/docs/live-video-api/reference"


@dataclass(frozen=True)
class BitrateCap:
    """The highest video bitrate a platform takes up to a resolution and frame rate
    (None: at any)."""

    max_height: int | None
    max_fps: float | None
    kbps: int


@dataclass(frozen=True)
class Platform:
    name: str
    hosts: tuple[str, ...]  # the host itself or a domain it is under
    source: str  # the platform's page that states these limits
    max_keyframe_interval_seconds: float
    video_codecs: tuple[str, ...]  # as status.ingest.videoCodec names them
    audio_codecs: tuple[str, ...]
    video_bitrate_caps: tuple[BitrateCap, ...]  # the first that fits the stream applies
    max_audio_bitrate_kbps: int | None


PLATFORMS = (
    Platform(
        name="YouTube",
        hosts=("youtube.com",),
        source=YOUTUBE_SOURCE,
        # "Keyframe frequency: Recommended 2 seconds. Do not exceed 4 seconds."
        max_keyframe_interval_seconds=4.0,
        video_codecs=("H264", "HEVC", "AV1"),
        audio_codecs=("AAC", "MP3"),
        # The maximum of the recommended range, by resolution and frame rate.
        video_bitrate_caps=(
            BitrateCap(720, 30, 8_000),
            BitrateCap(720, 60, 8_000),
            BitrateCap(1080, 30, 8_000),
            BitrateCap(1080, 60, 10_000),
            BitrateCap(1440, 30, 25_000),
            BitrateCap(1440, 60, 30_000),
            BitrateCap(2160, 30, 35_000),
            BitrateCap(2160, 60, 40_000),
        ),
        max_audio_bitrate_kbps=None,
    ),
    Platform(
        name="Twitch",
        hosts=("twitch.tv", "contribute.live-video.net"),
        source=TWITCH_SOURCE,
        # "Keyframe Interval: 2 seconds"; streams beyond are rejected or not transcoded.
        max_keyframe_interval_seconds=2.0,
        video_codecs=("H264",),
        audio_codecs=("AAC", "MP3"),
        # "Recommended bitrate range: 3-6 megabits per second".
        video_bitrate_caps=(BitrateCap(None, None, 6_000),),
        max_audio_bitrate_kbps=160,  # "Maximum audio bit rate: 160 kbps (AAC)"
    ),
    Platform(
        name="Facebook",
        hosts=("facebook.com",),
        source=FACEBOOK_SOURCE,
        # "Key Frame Size: Recommended 2 seconds. Do not exceed 4 seconds."
        max_keyframe_interval_seconds=4.0,
        video_codecs=("H264",),
        audio_codecs=("AAC",),
        video_bitrate_caps=(
            BitrateCap(360, 60, 1_000),
            BitrateCap(480, 30, 2_000),
            BitrateCap(720, 30, 4_000),
            BitrateCap(720, 60, 6_000),
            BitrateCap(1080, 30, 6_000),
            BitrateCap(1080, 60, 9_000),
        ),
        # "Audio Bitrate: 128 kbps (preferred) to 256 kbps (do not exceed)"
        max_audio_bitrate_kbps=256,
    ),
)


def platform_of(server_url: str) -> Platform | None:
    """The platform a destination's server belongs to, by its host name."""
    host = (urlsplit(server_url).hostname or "").rstrip(".").lower()
    for platform in PLATFORMS:
        if any(host == h or host.endswith("." + h) for h in platform.hosts):
            return platform
    return None


@dataclass(frozen=True)
class Breach:
    rule: str  # KeyframeInterval, VideoCodec, AudioCodec, VideoBitrate, AudioBitrate
    message: str

    def status(self, platform: Platform) -> dict[str, str]:
        return {"rule": self.rule, "message": self.message, "source": platform.source}


def _cap(platform: Platform, height: int | None, fps: float | None) -> BitrateCap | None:
    """The cap for the stream's resolution and frame rate: the first that fits (a 29.97
    fps stream is a 30 fps one)."""
    for cap in platform.video_bitrate_caps:
        tall = cap.max_height is None or (height is not None and height <= cap.max_height)
        fast = cap.max_fps is None or (fps or 0) <= cap.max_fps + 0.5
        if tall and fast:
            return cap
    return None


def _at(video: dict[str, Any]) -> str:
    height, fps = video.get("height"), video.get("frameRate")
    return f" at {height}p{fps:g}" if height and fps else ""


def breaches(
    platform: Platform, ingest: dict[str, Any], sender: str = "the encoder"
) -> list[Breach]:
    """What of the measured stream (status.ingest, or a profile_stream) breaks the
    platform's rules. ``sender``: who makes that stream, for the messages."""
    out = []
    video, audio = ingest.get("video") or {}, ingest.get("audio") or {}
    name = platform.name
    encoder_fix = ": set its keyframe interval to 2 s" if sender == "the encoder" else ""
    interval = video.get("keyframeIntervalSeconds")
    limit = platform.max_keyframe_interval_seconds
    if interval is not None and interval > limit + KEYFRAME_TOLERANCE_SECONDS:
        out.append(Breach(
            "KeyframeInterval",
            f"{name} takes a keyframe at least every {limit:g} s; {sender} sends one every "
            f"{interval:g} s{encoder_fix}",
        ))  # fmt: skip
    codec = ingest.get("videoCodec")
    if codec and codec not in platform.video_codecs:
        out.append(Breach(
            "VideoCodec",
            f"{name} takes {' or '.join(platform.video_codecs)} video; {sender} sends "
            f"{codec}",
        ))  # fmt: skip
    codec = ingest.get("audioCodec")
    if codec and codec not in platform.audio_codecs:
        out.append(Breach(
            "AudioCodec",
            f"{name} takes {' or '.join(platform.audio_codecs)} audio; {sender} sends "
            f"{codec}",
        ))  # fmt: skip
    kbps = video.get("bitrateKbps")
    cap = _cap(platform, video.get("height"), video.get("frameRate"))
    if kbps is not None and cap is not None and kbps > cap.kbps * (1 + BITRATE_TOLERANCE):
        out.append(Breach(
            "VideoBitrate",
            f"{name} takes at most {cap.kbps} kbit/s of video{_at(video)}; {sender} "
            f"sends {kbps} kbit/s",
        ))  # fmt: skip
    kbps, cap_kbps = audio.get("bitrateKbps"), platform.max_audio_bitrate_kbps
    if kbps is not None and cap_kbps is not None and kbps > cap_kbps * (1 + BITRATE_TOLERANCE):
        out.append(Breach(
            "AudioBitrate",
            f"{name} takes at most {cap_kbps} kbit/s of audio; {sender} sends {kbps} kbit/s",
        ))  # fmt: skip
    return out


def profile_stream(rendition: Rendition) -> dict[str, Any]:
    """A rendition's output in status.ingest's shape, from its profile: what its encoder
    makes (H.264 and AAC, keyframes forced at the interval, at most maxBitrateKbps)."""
    video = rendition.video
    return {
        "videoCodec": "H264",
        "audioCodec": "AAC",
        "video": {
            "height": video.height,
            "frameRate": float(video.fps),
            "keyframeIntervalSeconds": float(video.keyframe_interval_seconds),
            "bitrateKbps": video.max_bitrate_kbps or video.bitrate_kbps,
        },
        "audio": {"bitrateKbps": rendition.audio.bitrate_kbps},
    }


# Bitrates a suggested profile starts from (kbit/s at 30 fps), lowered to a platform's cap.
_SUGGESTED_KBPS = ((360, 800), (480, 1200), (720, 3000), (1080, 6000))


def suggested_profile(platform: Platform, ingest: dict[str, Any]) -> str:
    """A rendition to add that meets the platform's rules, as YAML a person can paste:
    the source's height up to 1080 (720 when unknown), 30 fps, 2 s keyframes."""
    height = int((ingest.get("video") or {}).get("height") or 720)
    height = min(height - height % 2, 1080)
    kbps = next((k for h, k in _SUGGESTED_KBPS if height <= h), 6000)
    cap = _cap(platform, height, 30)
    if cap is not None:
        kbps = min(kbps, cap.kbps)
    audio = min(128, platform.max_audio_bitrate_kbps or 128)
    return (
        f"{{name: {height}p, video: {{height: {height}, fps: 30, bitrateKbps: {kbps}, "
        f"keyframeIntervalSeconds: 2}}, audio: {{bitrateKbps: {audio}}}}}"
    )


def fix(
    platform: Platform,
    renditions: Sequence[Rendition],
    ingest: dict[str, Any],
    current: str | None = None,
) -> str:
    """What would make a destination's stream meet the platform's rules: an existing
    rendition that does (other than ``current``, the one it receives), else a profile."""
    for rendition in renditions:
        if rendition.name != current and not breaches(platform, profile_stream(rendition)):
            return (
                f"or send it rendition {rendition.name!r}, which meets {platform.name}'s "
                f"rules (restreams[].rendition: {rendition.name})"
            )
    return (
        f"or add a rendition that meets {platform.name}'s rules to spec.renditions, e.g. "
        f"{suggested_profile(platform, ingest)}, and set restreams[].rendition to its name"
    )
