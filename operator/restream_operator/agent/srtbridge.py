"""The ingest's SRT listener: an ffmpeg that waits for one SRT caller and publishes what
it sends into nginx-rtmp, so that relays see one stream whichever protocol the encoder
used.

Who may publish: the SRT passphrase is the stream key. libsrt rejects a caller with
another passphrase (or none) in its handshake, before a byte of media, and encrypts the
stream (AES) on the way; the bridge then publishes into nginx-rtmp with the key, which
on_publish checks like any other publisher's, so one encoder publishes at a time across
RTMP, RTMPS and SRT. A key SRT cannot use as a passphrase (outside 10 to 79 characters)
leaves SRT off, with the reason in /status (srtError).

Secrets never reach argv: the listener URL with its passphrase is a one-entry concat
script, and the key for nginx-rtmp a preset (``rtmp_playpath``), both in pipes, as the
relay hands its keys to ffmpeg (ffmpeg.py).

ffmpeg exits when its caller goes away (or when nginx-rtmp refuses the publish, e.g.
because another encoder is live); the agent starts the next listener at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import time
from collections.abc import Callable
from urllib.parse import quote

from . import process
from .ffmpeg import SRT_PASSPHRASE_LENGTH, concat_script, destination, preset_text

log = logging.getLogger("restream.ingest.srt")

# How long ffmpeg looks at the SRT input before publishing: MPEG-TS announces its
# tracks in the PMT, the first keyframe's parameter sets follow within a GOP.
ANALYZE_US = 1_000_000
# A listener that ends within this many seconds of starting counts as failing (backoff).
FAST_EXIT = 1.0


def key_problem(key: str) -> str | None:
    if len(key) not in SRT_PASSPHRASE_LENGTH:
        return (
            f"the stream key is {len(key)} characters long and SRT passphrases must be "
            f"{SRT_PASSPHRASE_LENGTH.start} to {SRT_PASSPHRASE_LENGTH.stop - 1}: use a key "
            "of that length (the generated one is), or turn spec.ingest.srt off"
        )
    return None


def listener_url(host: str, port: int, latency_ms: int, passphrase: str) -> str:
    """ffmpeg's libsrt listener; its options are microseconds."""
    return (
        f"srt://{host}:{port}?mode=listener&latency={latency_ms * 1000}"
        f"&passphrase={quote(passphrase, safe='')}&enforced_encryption=1&pbkeylen=16"
    )


def bridge_argv(
    ffmpeg: str, input_script: str, output_preset: str, output_url: str, tag: str
) -> list[str]:
    return [
        ffmpeg, "-hide_banner", "-nostdin", "-nostats", "-loglevel", "level+warning",
        "-protocol_whitelist", "file,srt",
        "-f", "concat", "-safe", "0", "-i", input_script,
        "-map", "0", "-c", "copy",
        # Tells the agent which publisher is this bridge (on_publish's flashver).
        "-rtmp_flashver", tag,
        "-flvflags", "no_duration_filesize",
        "-fpre", output_preset, "-f", "flv", output_url,
    ]  # fmt: skip


class SrtBridge:
    def __init__(
        self,
        *,
        host: str,
        port: int,
        latency_ms: int,
        key: str,
        rtmp_host: str,
        rtmp_port: int,
        application: str,
        ffmpeg: str = "ffmpeg",
        redact: Callable[[str], str] = lambda s: s,
    ) -> None:
        self.host, self.port = host, port
        self.latency_ms = latency_ms
        self._key = key
        self._rtmp = f"rtmp://{rtmp_host}:{rtmp_port}/{application}"
        self._ffmpeg = ffmpeg
        self._redact = redact
        # Not a secret: it only marks this bridge's publishes as SRT in the status.
        self.tag = f"restream-srt/{secrets.token_hex(8)}"
        self.error = key_problem(key)
        self.sessions = 0
        self._stop = asyncio.Event()
        self._proc: asyncio.subprocess.Process | None = None

    @property
    def listening(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    def stop(self) -> None:
        self._stop.set()
        if self._proc is not None and self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.send_signal(signal.SIGTERM)

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    async def run(self) -> None:
        if self.error is not None:
            log.error("SRT ingest off: %s", self.error)
            return
        log.info("SRT listener on", extra={"port": self.port, "latencyMs": self.latency_ms})
        failures = 0
        while not self._stop.is_set():
            started = time.monotonic()
            code = await self._once()
            if self._stop.is_set():
                return
            failures = failures + 1 if time.monotonic() - started < FAST_EXIT else 0
            # A caller that came and went: listen again at once. Failing at start-up
            # (a port in use): back off, up to 5 s.
            await self._pause(min(5.0, 0.2 * 2**failures) if failures else 0.0)
            log.info("SRT session ended (%s): listening again", code)

    async def _once(self) -> int:
        url = listener_url(self.host, self.port, self.latency_ms, self._key)
        script = concat_script(url, ANALYZE_US)
        dest = destination(self._rtmp, self._key)
        script_fd = process.pipe_with(script.encode())
        preset_fd = process.pipe_with(preset_text(dest.options).encode())
        try:
            argv = bridge_argv(
                self._ffmpeg,
                f"/dev/fd/{script_fd}",
                f"/dev/fd/{preset_fd}",
                dest.url,
                self.tag,
            )
            proc = await process.spawn(
                argv, env=process.child_env(), pass_fds=(script_fd, preset_fd)
            )
        except OSError as e:
            log.error("cannot start the SRT listener: %s", e)
            return -1
        finally:
            os.close(script_fd)
            os.close(preset_fd)
        self._proc = proc
        self.sessions += 1
        reader = asyncio.create_task(process.read_lines(proc.stderr, self._on_line))
        code = await process.wait_exit(proc)
        await asyncio.wait([reader], timeout=1.0)
        reader.cancel()
        return code

    def _on_line(self, line: str) -> None:
        if line.strip():
            log.warning("%s", self._redact(line), extra={"source": "ffmpeg-srt"})
