"""An encoder stand-in for the tests and the demo: ffmpeg publishing a test pattern
(H.264 with a keyframe every second, and an AAC tone) in real time, as OBS would.

The stream key goes to ffmpeg through a preset pipe, as the relay does it, so that no
process shows a key in `ps`.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from collections.abc import Sequence

from restream_operator.agent.ffmpeg import Tls, destination, preset_text

FPS = 25  # the test pattern's frame rate unless told otherwise
AAC = ("-c:a", "aac", "-b:a", "64k")
# FLV carries MP3 at 44.1, 22.05 or 11.025 kHz only.
MP3 = ("-c:a", "libmp3lame", "-b:a", "64k", "-ar", "44100")


def publisher_argv(
    url: str,
    preset_fd: int,
    seconds: float | None,
    size: str = "640x360",
    fps: int = FPS,
    rw_timeout_s: float | None = None,
    gop: int | None = None,
    audio_delay_s: float = 0.0,
    bframes: bool = False,
    audio: Sequence[str] = AAC,
    video_bitrate: str = "1200k",
    audio_source: str = "sine=frequency=440:sample_rate=48000",
) -> list[str]:
    """ffmpeg's argv; ``rw_timeout_s``: give up on a connection that stops moving, as an
    encoder does (then something may reconnect it). ``gop``: frames between keyframes
    (default: one a second). ``audio_delay_s``: the first audio leaves that much after the
    first video (as an encoder whose audio device opens late). ``bframes``: x264 with
    B-frames and lookahead (veryfast, profile high) instead of ultrafast zerolatency.
    ``audio``: the audio encoder's options (AAC; MP3 for a test of what else is relayed).
    ``audio_source``: a lavfi source (noise, unlike the tone, takes every bit an AAC
    encoder is given: what a test of an audio bitrate needs)."""
    duration = ["-t", f"{seconds:g}"] if seconds is not None else []
    give_up = ["-rw_timeout", str(int(rw_timeout_s * 1e6))] if rw_timeout_s else []
    gop = gop or fps
    delay = ["-itsoffset", f"{audio_delay_s:g}"] if audio_delay_s else []
    x264 = (
        ["-preset", "veryfast", "-profile:v", "high", "-bf", "3", "-x264-params", "rc-lookahead=40"]
        if bframes
        else ["-preset", "ultrafast", "-tune", "zerolatency"]
    )
    return [
        "ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error",
        "-re", "-f", "lavfi", "-i", f"testsrc2=size={size}:rate={fps}",
        *delay, "-re", "-f", "lavfi", "-i", audio_source,
        *duration,
        "-c:v", "libx264", *x264,
        "-g", str(gop), "-keyint_min", str(gop), "-b:v", video_bitrate,
        "-maxrate", video_bitrate, "-bufsize", f"{int(video_bitrate.rstrip('k')) // 2}k",
        "-pix_fmt", "yuv420p",
        *audio,
        # Each packet leaves when it is made: a late track is not waited for.
        *(["-max_interleave_delta", "0"] if audio_delay_s else []),
        *give_up,
        "-fpre", f"/dev/fd/{preset_fd}", "-f", "flv", url,
    ]  # fmt: skip


def gstreamer_argv(
    url: str,
    frames: int,
    *,
    fps: int = FPS,
    gop: int = 50,
    kbps: int = 1500,
    video: bool = True,
    audio: bool = True,
    sink_options: Sequence[str] = (),
) -> list[str]:
    """GStreamer publishing as OBS-like encoders do: x264 with B-frames and lookahead
    (its first audio arrives after its first keyframe), AAC, flvmux, rtmp2sink; ``frames``
    video frames (and as much audio), then the end of the stream. An srt:// ``url``:
    MPEG-TS and srtsink instead of FLV and rtmp2sink. ``sink_options``: the sink's
    properties (name=value), e.g. rtmp2sink's TLS validation flags, srtsink's passphrase.

    gst-launch takes everything in argv, the stream key in the URL included: it stands for
    the user's encoder, whose process is not the product's to keep secrets in.
    """
    seconds = frames / fps
    parts = []
    if video:
        parts.append(
            f"videotestsrc is-live=true num-buffers={frames} pattern=ball "
            f"! video/x-raw,width=640,height=360,framerate={fps}/1 "
            f"! x264enc speed-preset=veryfast bframes=3 rc-lookahead=40 key-int-max={gop} "
            f"bitrate={kbps} ! video/x-h264,profile=high ! queue ! mux."
        )
    if audio:
        # audiotestsrc's buffers are 1024 samples long.
        buffers = round(seconds * 48000 / 1024)
        parts.append(
            f"audiotestsrc is-live=true num-buffers={buffers} "
            "! audio/x-raw,rate=48000,channels=2 ! voaacenc bitrate=128000 "
            # MPEG-TS carries AAC as ADTS, which aacparse makes of voaacenc's raw AAC.
            + ("! aacparse " if url.startswith("srt://") else "")
            + "! queue ! mux."
        )
    if url.startswith("srt://"):
        # MPEG-TS over SRT, as OBS and hardware encoders send it.
        sink = " ".join(["mpegtsmux name=mux alignment=7 ! srtsink", f"uri={url}", *sink_options])
    else:
        sink = " ".join(
            ["flvmux name=mux streamable=true ! rtmp2sink", f"location={url}", *sink_options]
        )
    pipeline = " ".join(parts) + " " + sink
    return ["gst-launch-1.0", "-q", "-e", *pipeline.split()]


def pipe_with(data: bytes) -> int:
    """The read end of a pipe that holds ``data`` (small: it must fit the pipe)."""
    r, w = os.pipe()
    os.write(w, data)
    os.close(w)
    return r


def preset_pipe(url: str, key: str, ca_file: str | None = None) -> tuple[str, int]:
    """(the URL ffmpeg is given, the read end of a pipe holding the key's preset);
    ``ca_file``: for rtmps://, the CAs the server's certificate must chain to (it is
    verified, host name included, either way)."""
    dest = destination(url, key, tls=Tls(ca_file=ca_file) if ca_file else None)
    return dest.url, pipe_with(preset_text(dest.options).encode())


class Publisher:
    """The encoder as a process of its own, for as long as ``seconds`` (None: until
    stopped). ``ca_file``: an rtmps:// ``url`` whose certificate is verified against it.
    ``wrapper``: argv that runs the encoder's argv given after it (e.g. a resolver of its
    own)."""

    def __init__(
        self,
        url: str,
        key: str,
        seconds: float | None,
        *,
        ca_file: str | None = None,
        wrapper: Sequence[str] = (),
    ) -> None:
        shown_url, r = preset_pipe(url, key, ca_file)
        argv = [*wrapper, *publisher_argv(shown_url, r, seconds, rw_timeout_s=5)]
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - read by stderr() after exit
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            argv, stdout=subprocess.DEVNULL, stderr=self.log, pass_fds=[r],
            start_new_session=True,
        )  # fmt: skip
        os.close(r)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stderr(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-2000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout)
