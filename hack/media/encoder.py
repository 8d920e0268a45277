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

from restream_operator.agent.ffmpeg import destination, preset_text


def publisher_argv(
    url: str,
    preset_fd: int,
    seconds: float | None,
    size: str = "640x360",
    fps: int = 25,
    rw_timeout_s: float | None = None,
    video_bitrate: str = "1200k",
) -> list[str]:
    """ffmpeg's argv; ``rw_timeout_s``: give up on a connection that stops moving, as an
    encoder does (then something may reconnect it)."""
    duration = ["-t", f"{seconds:g}"] if seconds is not None else []
    give_up = ["-rw_timeout", str(int(rw_timeout_s * 1e6))] if rw_timeout_s else []
    return [
        "ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error",
        "-re", "-f", "lavfi", "-i", f"testsrc2=size={size}:rate={fps}",
        "-re", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
        *duration,
        "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency",
        "-g", str(fps), "-keyint_min", str(fps), "-b:v", video_bitrate,
        "-maxrate", video_bitrate, "-bufsize", f"{int(video_bitrate.rstrip('k')) // 2}k",
        "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-b:a", "64k",
        *give_up,
        "-fpre", f"/dev/fd/{preset_fd}", "-f", "flv", url,
    ]  # fmt: skip


def pipe_with(data: bytes) -> int:
    """The read end of a pipe that holds ``data`` (small: it must fit the pipe)."""
    r, w = os.pipe()
    os.write(w, data)
    os.close(w)
    return r


def preset_pipe(url: str, key: str) -> tuple[str, int]:
    """(the URL ffmpeg is given, the read end of a pipe holding the key's preset)."""
    dest = destination(url, key)
    return dest.url, pipe_with(preset_text(dest.options).encode())


class Publisher:
    """The encoder as a process of its own, for as long as ``seconds`` (None: until
    stopped)."""

    def __init__(self, url: str, key: str, seconds: float | None) -> None:
        shown_url, r = preset_pipe(url, key)
        argv = publisher_argv(shown_url, r, seconds, rw_timeout_s=5)
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
