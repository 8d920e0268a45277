"""A test encoder that publishes real HEVC (or AV1, VP9) over Enhanced RTMP, as OBS 30+ does.

Debian's ffmpeg 5.1 encodes HEVC (libx265), AV1 (libsvtav1, libaom) and VP9 (libvpx) but
cannot send them over RTMP (its FLV muxer predates Enhanced RTMP). So ffmpeg encodes a
test pattern and an AAC tone in real time into fragmented MP4 on a pipe, and this
program re-frames it for RTMP (agent/rtmp.py): fragmented MP4 hands over what Enhanced
RTMP needs without parsing any video bitstream: the codec configuration record ready
made (``hvcC``, ``av1C``, ``vpcC``: the SequenceStart payload), samples in the form FLV
carries them (length-prefixed NAL units for HEVC, OBUs for AV1, frames for VP9), sync
flags and composition offsets. Annex B would have meant building hvcC from a parsed SPS.

Per the veovera Enhanced RTMP v1 spec: each video message starts with IsExHeader (0x80)
| FrameType << 4 | PacketType, then the FourCC; SequenceStart carries the record,
CodedFrames an SI24 composition offset before the data, CodedFramesX (offset 0) none.
onMetaData's ``videocodecid`` is the FourCC as a number, as OBS sends it. Audio is
classic AAC (0xAF), as from OBS.

The stream key comes from the environment (``ERTMP_STREAM_KEY``), never argv::

    ERTMP_STREAM_KEY=... python -m hack.media.ertmp rtmp://127.0.0.1:1935/live --codec hevc
"""

from __future__ import annotations

import argparse
import asyncio
import os
import struct
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from restream_operator.agent import rtmp

KEY_ENV = "ERTMP_STREAM_KEY"
PACKET_SEQUENCE_START = 0
PACKET_CODED_FRAMES = 1
PACKET_SEQUENCE_END = 2
PACKET_CODED_FRAMES_X = 3
KEY_FRAME, INTER_FRAME = 1, 2
AAC_HEADER = 0xAF  # SoundFormat 10 (AAC); the rate/size/type bits are fixed for AAC

# codec -> (ffmpeg encoder and options, MP4 sample entry, config box, FourCC)
ENCODERS: dict[str, tuple[list[str], str, str, bytes]] = {
    "hevc": (
        ["-c:v", "libx265", "-preset", "ultrafast", "-tune", "zerolatency",
         "-x265-params", "log-level=error"],
        "hvc1", "hvcC", b"hvc1",
    ),
    "av1": (
        ["-c:v", "libsvtav1", "-preset", "12", "-svtav1-params", "tune=0"],
        "av01", "av1C", b"av01",
    ),
    "vp9": (
        ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-row-mt", "1"],
        "vp09", "vpcC", b"vp09",
    ),
}  # fmt: skip


def ffmpeg_argv(codec: str, seconds: float, size: str, fps: int, kbps: int) -> list[str]:
    encoder = ENCODERS[codec][0]
    return [
        "ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error",
        "-re", "-f", "lavfi", "-i", f"testsrc2=size={size}:rate={fps}",
        "-re", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
        "-t", f"{seconds:g}",
        *encoder, "-g", str(fps), "-b:v", f"{kbps}k", "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-b:a", "64k",
        "-f", "mp4", "-movflags", "empty_moov+frag_every_frame+default_base_moof",
        "-tag:v", ENCODERS[codec][1], "pipe:1",
    ]  # fmt: skip


# -- fragmented MP4 ------------------------------------------------------------------------


def boxes(data: bytes, start: int = 0, end: int | None = None) -> Iterator[tuple[str, int, int]]:
    """(type, payload start, payload end) of each box in data[start:end]."""
    end = len(data) if end is None else end
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, pos)
        head = 8
        if size == 1:
            (size,) = struct.unpack_from(">Q", data, pos + 8)
            head = 16
        elif size == 0:
            size = end - pos
        yield kind.decode("latin-1"), pos + head, pos + size
        pos += size


def child(data: bytes, start: int, end: int, *path: str) -> tuple[int, int] | None:
    """The payload span of the box at ``path`` under data[start:end]."""
    for name in path:
        found = next(((s, e) for k, s, e in boxes(data, start, end) if k == name), None)
        if found is None:
            return None
        start, end = found
    return start, end


@dataclass
class Track:
    track_id: int
    kind: str  # "vide" or "soun"
    timescale: int
    entry: str  # the sample entry's type: hvc1, av01, vp09, mp4a
    config: bytes  # hvcC / av1C / vpcC payload, or the AAC AudioSpecificConfig
    width: int = 0
    height: int = 0
    default_duration: int = 0
    default_size: int = 0
    default_flags: int = 0


@dataclass
class Sample:
    track: Track
    dts: int  # in the track's timescale
    cto: int
    sync: bool
    data: bytes


def _descriptor(data: bytes, pos: int) -> tuple[int, int, int]:
    """An MPEG-4 descriptor: (tag, payload start, payload end)."""
    tag, pos, size = data[pos], pos + 1, 0
    for _ in range(4):
        byte = data[pos]
        pos += 1
        size = size << 7 | byte & 0x7F
        if not byte & 0x80:
            break
    return tag, pos, pos + size


def audio_specific_config(esds: bytes) -> bytes:
    """esds (after version/flags) -> ES_Descriptor -> DecoderConfig -> DecoderSpecificInfo."""
    tag, s, e = _descriptor(esds, 4)
    assert tag == 3, tag
    flags, s = esds[s + 2], s + 3  # after ES_ID
    if flags & 0x80:  # streamDependenceFlag
        s += 2
    if flags & 0x40:  # URL_Flag
        s += 1 + esds[s]
    if flags & 0x20:  # OCRstreamFlag
        s += 2
    tag, s, e = _descriptor(esds, s)
    assert tag == 4, tag
    tag, s, e = _descriptor(esds, s + 13)
    assert tag == 5, tag
    return esds[s:e]


def parse_moov(data: bytes, start: int, end: int, config_box: str) -> dict[int, Track]:
    tracks: dict[int, Track] = {}
    for kind, s, e in boxes(data, start, end):
        if kind != "trak":
            continue
        tkhd = child(data, s, e, "tkhd")
        mdhd = child(data, s, e, "mdia", "mdhd")
        hdlr = child(data, s, e, "mdia", "hdlr")
        stsd = child(data, s, e, "mdia", "minf", "stbl", "stsd")
        assert tkhd and mdhd and hdlr and stsd
        track_id = struct.unpack_from(">I", data, tkhd[0] + (20 if data[tkhd[0]] == 1 else 12))[0]
        timescale = struct.unpack_from(">I", data, mdhd[0] + (20 if data[mdhd[0]] == 1 else 12))[0]
        handler = data[hdlr[0] + 8 : hdlr[0] + 12].decode("latin-1")
        entry_kind, es, ee = next(boxes(data, stsd[0] + 8, stsd[1]))
        if handler == "vide":
            width, height = struct.unpack_from(">HH", data, es + 24)
            cfg = child(data, es + 78, ee, config_box)
            assert cfg is not None, f"no {config_box} in {entry_kind}"
            config = data[cfg[0] : cfg[1]]
            tracks[track_id] = Track(
                track_id, handler, timescale, entry_kind, config, width, height
            )
        elif handler == "soun":
            esds = child(data, es + 28, ee, "esds")
            assert esds is not None
            config = audio_specific_config(data[esds[0] : esds[1]])
            tracks[track_id] = Track(track_id, handler, timescale, entry_kind, config)
    mvex = child(data, start, end, "mvex")
    for kind, s, _ in boxes(data, *(mvex or (0, 0))):
        if kind == "trex":
            tid, _, duration, size, flags = struct.unpack_from(">IIIII", data, s + 4)
            if tid in tracks:
                t = tracks[tid]
                t.default_duration, t.default_size, t.default_flags = duration, size, flags
    return tracks


def parse_fragment(moof: bytes, mdat: bytes, tracks: dict[int, Track]) -> list[Sample]:
    """Samples of one moof + mdat; data offsets count from the moof's first byte."""
    whole = moof + mdat
    out = []
    for kind, s, e in boxes(whole, 8, len(moof)):
        if kind != "traf":
            continue
        tfhd = child(whole, s, e, "tfhd")
        tfdt = child(whole, s, e, "tfdt")
        assert tfhd and tfdt
        flags = int.from_bytes(whole[tfhd[0] + 1 : tfhd[0] + 4], "big")
        (tid,) = struct.unpack_from(">I", whole, tfhd[0] + 4)
        track = tracks[tid]
        pos = tfhd[0] + 8 + (8 if flags & 0x1 else 0) + (4 if flags & 0x2 else 0)
        duration, size, sflags = track.default_duration, track.default_size, track.default_flags
        if flags & 0x8:
            (duration,), pos = struct.unpack_from(">I", whole, pos), pos + 4
        if flags & 0x10:
            (size,), pos = struct.unpack_from(">I", whole, pos), pos + 4
        if flags & 0x20:
            (sflags,) = struct.unpack_from(">I", whole, pos)
        version = whole[tfdt[0]]
        (dts,) = struct.unpack_from(">Q" if version == 1 else ">I", whole, tfdt[0] + 4)
        for tkind, ts, _ in boxes(whole, s, e):
            if tkind == "trun":
                samples, dts = _trun(whole, ts, track, dts, (duration, size, sflags))
                out += samples
    return out


def _trun(
    whole: bytes, ts: int, track: Track, dts: int, defaults: tuple[int, int, int]
) -> tuple[list[Sample], int]:
    version, flags = whole[ts], int.from_bytes(whole[ts + 1 : ts + 4], "big")
    count, pos = struct.unpack_from(">I", whole, ts + 4)[0], ts + 8
    data_offset = 0
    if flags & 0x1:
        (data_offset,), pos = struct.unpack_from(">i", whole, pos), pos + 4
    first_flags = None
    if flags & 0x4:
        (first_flags,), pos = struct.unpack_from(">I", whole, pos), pos + 4
    out = []
    for i in range(count):
        duration, size, sflags = defaults
        cto = 0
        if flags & 0x100:
            (duration,), pos = struct.unpack_from(">I", whole, pos), pos + 4
        if flags & 0x200:
            (size,), pos = struct.unpack_from(">I", whole, pos), pos + 4
        if flags & 0x400:
            (sflags,), pos = struct.unpack_from(">I", whole, pos), pos + 4
        if flags & 0x800:
            (cto,), pos = struct.unpack_from(">i" if version else ">I", whole, pos), pos + 4
        if i == 0 and first_flags is not None:
            sflags = first_flags
        sync = not sflags & 0x10000  # sample_is_non_sync_sample
        out.append(Sample(track, dts, cto, sync, whole[data_offset : data_offset + size]))
        data_offset += size
        dts += duration
    return out, dts


@dataclass
class Fmp4Reader:
    """Boxes off a pipe: the tracks once the moov is in, then samples per fragment."""

    stream: asyncio.StreamReader
    config_box: str
    tracks: dict[int, Track] = field(default_factory=dict)

    async def _box(self) -> tuple[str, bytes] | None:
        try:
            head = await self.stream.readexactly(8)
        except asyncio.IncompleteReadError:
            return None
        size, kind = struct.unpack(">I4s", head)
        if size == 1:
            large = await self.stream.readexactly(8)
            (size,) = struct.unpack(">Q", large)
            head += large
        body = await self.stream.readexactly(size - len(head))
        return kind.decode("latin-1"), head + body

    async def samples(self) -> AsyncIterator[Sample]:
        moof = b""
        while (box := await self._box()) is not None:
            kind, raw = box
            if kind == "moov":
                self.tracks = parse_moov(raw, 8, len(raw), self.config_box)
            elif kind == "moof":
                moof = raw
            elif kind == "mdat" and moof:
                for sample in parse_fragment(moof, raw, self.tracks):
                    yield sample
                moof = b""


# -- RTMP framing ---------------------------------------------------------------------------


def video_message(
    fourcc: bytes, packet_type: int, frame_type: int, body: bytes, cto: int = 0
) -> bytes:
    head = bytes((0x80 | frame_type << 4 | packet_type,)) + fourcc
    if packet_type == PACKET_CODED_FRAMES:
        head += (cto & 0xFFFFFF).to_bytes(3, "big")
    return head + body


def aac_message(packet_type: int, body: bytes) -> bytes:
    return bytes((AAC_HEADER, packet_type)) + body


def metadata(tracks: dict[int, Track], fourcc: bytes, fps: int, kbps: int) -> rtmp.AmfObject:
    video = next(t for t in tracks.values() if t.kind == "vide")
    return rtmp.AmfObject(
        duration=0.0,
        width=float(video.width),
        height=float(video.height),
        framerate=float(fps),
        videocodecid=float(int.from_bytes(fourcc, "big")),
        videodatarate=float(kbps),
        audiocodecid=10.0,
        audiodatarate=64.0,
        audiosamplerate=48000.0,
        audiosamplesize=16.0,
        stereo=False,
        encoder="restream-operator hack/media/ertmp.py",
    )


def _ms(ticks: int, timescale: int) -> int:
    return ticks * 1000 // timescale


async def publish(
    url: str, key: str, codec: str, seconds: float, size: str, fps: int, kbps: int
) -> int:
    parts = urlsplit(url)
    app = parts.path.strip("/")
    _, _, config_box, fourcc = ENCODERS[codec]
    proc = await asyncio.create_subprocess_exec(
        *ffmpeg_argv(codec, seconds, size, fps, kbps), stdout=asyncio.subprocess.PIPE
    )
    assert proc.stdout is not None
    client = await rtmp.Client.connect(parts.hostname or "127.0.0.1", parts.port or 1935, app)
    try:
        await client.publish(key)
        reader = Fmp4Reader(proc.stdout, config_box)
        started = False
        async for sample in reader.samples():
            if not started:
                await client.send_metadata(metadata(reader.tracks, fourcc, fps, kbps))
                for track in reader.tracks.values():
                    if track.kind == "vide":
                        payload = video_message(
                            fourcc, PACKET_SEQUENCE_START, KEY_FRAME, track.config
                        )
                        await client.send_media(rtmp.VIDEO, 0, payload)
                    else:
                        await client.send_media(rtmp.AUDIO, 0, aac_message(0, track.config))
                started = True
            track = sample.track
            ms = _ms(sample.dts, track.timescale)
            if track.kind == "vide":
                cto = _ms(sample.cto, track.timescale)
                packet = PACKET_CODED_FRAMES if cto else PACKET_CODED_FRAMES_X
                frame = KEY_FRAME if sample.sync else INTER_FRAME
                await client.send_media(
                    rtmp.VIDEO, ms, video_message(fourcc, packet, frame, sample.data, cto)
                )
            else:
                await client.send_media(rtmp.AUDIO, ms, aac_message(1, sample.data))
        await client.send_media(
            rtmp.VIDEO, 0, video_message(fourcc, PACKET_SEQUENCE_END, KEY_FRAME, b"")
        )
    finally:
        await client.close()
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("url", help="rtmp://host:port/app (the key comes from $" + KEY_ENV + ")")
    parser.add_argument("--codec", choices=sorted(ENCODERS), default="hevc")
    parser.add_argument("--seconds", type=float, default=3600)
    parser.add_argument("--size", default="640x360")
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument("--kbps", type=int, default=1200)
    args = parser.parse_args(argv)
    key = os.environ.get(KEY_ENV, "")
    if not key:
        parser.error(f"set {KEY_ENV}")
    try:
        return asyncio.run(
            publish(args.url, key, args.codec, args.seconds, args.size, args.fps, args.kbps)
        )
    except rtmp.RtmpError as e:
        print(f"ertmp: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
