"""What the encoder really sends, measured from the stream the ingest's probe plays.

Resolution comes from the H.264 sequence parameter set, the audio's sample rate and
channels from AAC's AudioSpecificConfig, and frame rate, keyframe interval and bitrates
from the messages' own timestamps and sizes: never from onMetaData, which is whatever
the encoder claims (OBS announces its configured keyframe interval; a misconfigured
x264 may do something else).

Each message costs a header byte or two and an append: the parameter sets are parsed
once per broadcast, when they arrive.
"""

from __future__ import annotations

import itertools
import statistics
from collections import deque
from dataclasses import dataclass, field

from .contract import SourceAudio, SourceVideo

# Rates and intervals are measured over the last WINDOW_MS of media time: long enough
# that millisecond timestamps give a frame rate to 0.1 %, short enough to follow a change.
WINDOW_MS = 10_000
# The last keyframe intervals kept: their median is the interval (one odd GOP, at a
# scene cut, does not make it flicker).
KEYFRAMES_KEPT = 6
# Frame rates people set; a measured rate within SNAP of one is that one (timestamps
# in whole milliseconds cannot tell 30 from 30.02).
COMMON_FRAME_RATES = (23.976, 24.0, 25.0, 29.97, 30.0, 48.0, 50.0, 59.94, 60.0)
SNAP = 0.005

AAC_SAMPLE_RATES = (
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
)  # fmt: skip
# FLV's SoundRate bits, for the codecs (MP3) whose rate the tag header gives.
FLV_SAMPLE_RATES = (5512, 11025, 22050, 44100)
SOUND_FORMAT_AAC = 10
KEYFRAME = 1
AVC_CODEC_ID = 7
AVC_SEQUENCE_HEADER = 0
VIDEO_EX_HEADER_BIT = 0x80
EX_SEQUENCE_START = 0
EX_METADATA = 4


class _Bits:
    """An H.264 RBSP read bit by bit (emulation prevention bytes already removed)."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def bit(self) -> int:
        byte = self.pos >> 3
        if byte >= len(self.data):
            raise ValueError("the parameter set ends early")
        value = (self.data[byte] >> (7 - (self.pos & 7))) & 1
        self.pos += 1
        return value

    def bits(self, n: int) -> int:
        value = 0
        for _ in range(n):
            value = (value << 1) | self.bit()
        return value

    def ue(self) -> int:
        """Exp-Golomb, unsigned."""
        zeros = 0
        while self.bit() == 0:
            zeros += 1
            if zeros > 31:
                raise ValueError("a malformed Exp-Golomb code")
        return (1 << zeros) - 1 + self.bits(zeros)

    def se(self) -> int:
        k = self.ue()
        return (k + 1) // 2 if k & 1 else -(k // 2)


def _rbsp(nal: bytes) -> bytes:
    """The NAL unit's payload without its header byte and emulation prevention bytes."""
    out = bytearray()
    zeros = 0
    for b in nal[1:]:
        if zeros >= 2 and b == 3:
            zeros = 0
            continue
        out.append(b)
        zeros = zeros + 1 if b == 0 else 0
    return bytes(out)


def _skip_scaling_list(r: _Bits, size: int) -> None:
    last = nxt = 8
    for _ in range(size):
        if nxt != 0:
            nxt = (last + r.se() + 256) % 256
        last = nxt if nxt != 0 else last


HIGH_PROFILES = frozenset({100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135})


def sps_resolution(sps: bytes) -> tuple[int, int]:
    """Width and height (cropped: what a viewer sees) from an H.264 SPS NAL unit
    (ITU-T H.264 §7.3.2.1.1). Raises ValueError for a malformed one."""
    r = _Bits(_rbsp(sps))
    profile = r.bits(8)
    r.bits(16)  # constraint flags, level
    r.ue()  # seq_parameter_set_id
    chroma_format = 1
    if profile in HIGH_PROFILES:
        chroma_format = r.ue()
        if chroma_format == 3:
            r.bit()  # separate_colour_plane_flag
        r.ue()  # bit_depth_luma_minus8
        r.ue()  # bit_depth_chroma_minus8
        r.bit()  # qpprime_y_zero_transform_bypass_flag
        if r.bit():  # seq_scaling_matrix_present_flag
            for i in range(8 if chroma_format != 3 else 12):
                if r.bit():
                    _skip_scaling_list(r, 16 if i < 6 else 64)
    r.ue()  # log2_max_frame_num_minus4
    poc_type = r.ue()
    if poc_type == 0:
        r.ue()
    elif poc_type == 1:
        r.bit()
        r.se()
        r.se()
        for _ in range(r.ue()):
            r.se()
    r.ue()  # max_num_ref_frames
    r.bit()  # gaps_in_frame_num_value_allowed_flag
    width_mbs = r.ue() + 1
    height_map_units = r.ue() + 1
    frame_mbs_only = r.bit()
    if not frame_mbs_only:
        r.bit()  # mb_adaptive_frame_field_flag
    r.bit()  # direct_8x8_inference_flag
    width = width_mbs * 16
    height = (2 - frame_mbs_only) * height_map_units * 16
    if r.bit():  # frame_cropping_flag
        left, right, top, bottom = r.ue(), r.ue(), r.ue(), r.ue()
        crop_x = 1 if chroma_format in (0, 3) else 2
        crop_y = (1 if chroma_format in (0, 2, 3) else 2) * (2 - frame_mbs_only)
        width -= crop_x * (left + right)
        height -= crop_y * (top + bottom)
    if width <= 0 or height <= 0:
        raise ValueError("the parameter set's cropping leaves no picture")
    return width, height


def avc_resolution(record: bytes) -> tuple[int, int] | None:
    """From an AVCDecoderConfigurationRecord (the body of an FLV AVC sequence header):
    the first SPS's resolution, or None when it has none or cannot be read."""
    try:
        if len(record) < 8 or record[5] & 0x1F == 0:
            return None
        length = int.from_bytes(record[6:8], "big")
        sps = record[8 : 8 + length]
        if len(sps) != length or not sps or sps[0] & 0x1F != 7:
            return None
        return sps_resolution(sps)
    except ValueError:
        return None


def aac_config(asc: bytes) -> tuple[int, int] | None:
    """Sample rate (Hz) and channels from an AudioSpecificConfig (ISO 14496-3 §1.6.2.1),
    or None when it cannot be read. Channels 0 (a program config element) is reported
    as 0: the rare case of a layout described elsewhere."""
    r = _Bits(asc)
    try:
        object_type = r.bits(5)
        if object_type == 31:
            r.bits(6)
        index = r.bits(4)
        rate = r.bits(24) if index == 15 else (
            AAC_SAMPLE_RATES[index] if index < len(AAC_SAMPLE_RATES) else 0
        )  # fmt: skip
        channels = r.bits(4)
    except ValueError:
        return None
    return (rate, channels) if rate else None


def snapped_rate(fps: float) -> float:
    """A measured frame rate as the nearest common rate within SNAP of it (29.97 and 30
    are both near 29.99: 30 is nearer), else to 0.01."""
    nearest = min(COMMON_FRAME_RATES, key=lambda common: abs(fps - common))
    return nearest if abs(fps - nearest) <= SNAP * nearest else round(fps, 2)


@dataclass
class _Window:
    """Sizes and timestamps (ms, unwrapped) of one track's last WINDOW_MS."""

    items: deque[tuple[int, int]] = field(default_factory=deque)
    total: int = 0

    def add(self, ts: int, size: int) -> None:
        self.items.append((ts, size))
        self.total += size
        while self.items and self.items[0][0] < ts - WINDOW_MS:
            self.total -= self.items.popleft()[1]

    def span_ms(self) -> int:
        return self.items[-1][0] - self.items[0][0] if len(self.items) > 1 else 0

    def kbps(self) -> int | None:
        """Bits per millisecond is kbit/s. The first item's bytes belong before the
        span, so they are not counted."""
        span = self.span_ms()
        if span < 1000:
            return None
        return round((self.total - self.items[0][1]) * 8 / span)


@dataclass
class Source:
    """One broadcast's measurements, fed every media message the probe receives."""

    width: int | None = None
    height: int | None = None
    sample_rate: int | None = None
    channels: int | None = None
    video: _Window = field(default_factory=_Window)
    audio: _Window = field(default_factory=_Window)
    keyframes: deque[int] = field(default_factory=lambda: deque(maxlen=KEYFRAMES_KEPT + 1))
    _last_ts: int | None = None
    _wraps: int = 0

    def _unwrap(self, ts: int) -> int:
        """RTMP timestamps are 32 bits of milliseconds (49 days), and wrap."""
        if self._last_ts is not None and ts < self._last_ts - (1 << 31):
            self._wraps += 1
        self._last_ts = ts
        return ts + (self._wraps << 32)

    def on_video(self, payload: bytes, timestamp: int) -> None:
        if not payload:
            return
        head = payload[0]
        if head & VIDEO_EX_HEADER_BIT:  # Enhanced RTMP: frame type in bits 4-6
            frame_type, packet = (head >> 4) & 0x7, head & 0x0F
            is_frame = packet not in (EX_SEQUENCE_START, EX_METADATA)
        else:
            frame_type, codec = head >> 4, head & 0x0F
            is_header = codec == AVC_CODEC_ID and len(payload) > 1 and payload[1] == 0
            if is_header:
                resolution = avc_resolution(payload[5:])
                if resolution is not None:
                    self.width, self.height = resolution
            is_frame = not is_header and frame_type != 5  # 5: a command frame
        if not is_frame:
            return
        ts = self._unwrap(timestamp)
        self.video.add(ts, len(payload))
        if frame_type == KEYFRAME and (not self.keyframes or ts > self.keyframes[-1]):
            self.keyframes.append(ts)

    def on_audio(self, payload: bytes, timestamp: int) -> None:
        if not payload:
            return
        sound_format = payload[0] >> 4
        if sound_format == SOUND_FORMAT_AAC:
            if len(payload) > 1 and payload[1] == 0:  # the AudioSpecificConfig
                found = aac_config(payload[2:])
                if found is not None:
                    self.sample_rate, self.channels = found
                return
        elif self.sample_rate is None and sound_format not in (9,):  # 9: Enhanced RTMP
            self.sample_rate = FLV_SAMPLE_RATES[(payload[0] >> 2) & 3]
            self.channels = 2 if payload[0] & 1 else 1
        self.audio.add(self._unwrap(timestamp), len(payload))

    def frame_rate(self) -> float | None:
        span = self.video.span_ms()
        if span < 1000:
            return None
        return snapped_rate((len(self.video.items) - 1) * 1000 / span)

    def keyframe_interval(self) -> float | None:
        """Seconds between keyframes (the median of the last few), once two arrived."""
        k = list(self.keyframes)
        if len(k) < 2:
            return None
        return round(statistics.median(b - a for a, b in itertools.pairwise(k)) / 1000, 2)

    def video_status(self) -> SourceVideo:
        return {
            "width": self.width,
            "height": self.height,
            "frameRate": self.frame_rate(),
            "keyframeIntervalSeconds": self.keyframe_interval(),
            "bitrateKbps": self.video.kbps(),
        }

    def audio_status(self) -> SourceAudio:
        return {
            "sampleRateHz": self.sample_rate,
            "channels": self.channels,
            "bitrateKbps": self.audio.kbps(),
        }
