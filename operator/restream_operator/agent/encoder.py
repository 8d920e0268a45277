"""The encoder agent: one rendition, encoded once, published back to the ingest.

It is a relay (relay.py) whose destination is the ingest itself and whose ffmpeg
transcodes instead of copying: the same wait on the ingest's stream before a broadcast,
the same watchdog, reconnects with bounded backoff, never exiting on its own, the same
/status, /readyz and /metrics. What differs:

* ffmpeg scales to the profile's height (width from the source's aspect ratio, even),
  converts to its frame rate, and encodes H.264 (libx264) with a keyframe exactly every
  keyframeIntervalSeconds (``-g``/``-keyint_min`` from the frame rate, no scene-cut
  keyframes, and ``-force_key_frames`` on the same times) and AAC;
* the "key" it publishes with is the rendition's publish key, derived from the play
  token it holds (contract.rendition_publish_key): it reaches ffmpeg through the preset
  pipe like a destination key, never argv, and is masked in everything it writes;
* while Live, it plays its own rendition back from the ingest (probe.py's Probe) and
  reports what the ingest really serves: width, height, keyframe interval, bitrate.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from urllib.parse import urlsplit

from . import contract
from .contract import RelayAgentStatus, RelayState
from .probe import Probe
from .redact import Redactor
from .relay import Relay, RelayConfig, run_served

log = logging.getLogger("restream.encoder")

PROBE_CHECK_EVERY = 1.0


@dataclass(frozen=True)
class Profile:
    """What to encode (models.Rendition, flattened into the agent's flags)."""

    height: int
    fps: int
    video_kbps: int
    max_kbps: int
    keyframe_interval: int
    preset: str
    profile: str
    audio_kbps: int
    sample_rate: int
    channels: int

    @property
    def gop(self) -> int:
        return self.fps * self.keyframe_interval


def transcode_args(p: Profile) -> list[str]:
    """ffmpeg's output options between its input and the FLV muxer."""
    return [
        "-map", "0:v:0", "-map", "0:a:0?",
        # Even width from the source's aspect ratio; frames dropped or repeated to fps.
        "-vf", f"scale=-2:{p.height},fps={p.fps}",
        "-c:v", "libx264", "-preset", p.preset, "-profile:v", p.profile,
        "-pix_fmt", "yuv420p",
        "-b:v", f"{p.video_kbps}k", "-maxrate", f"{p.max_kbps}k", "-bufsize", f"{p.max_kbps}k",
        # A keyframe every gop frames and at no other frame: platforms count seconds
        # between keyframes, and a scene cut would make an interval short.
        "-g", str(p.gop), "-keyint_min", str(p.gop), "-sc_threshold", "0",
        "-force_key_frames", f"expr:gte(t,n_forced*{p.keyframe_interval})",
        "-c:a", "aac", "-b:a", f"{p.audio_kbps}k", "-ar", str(p.sample_rate),
        "-ac", str(p.channels),
    ]  # fmt: skip


class Encoder(Relay):
    """A Relay to the ingest, transcoding, that measures what it publishes."""

    def __init__(self, cfg: RelayConfig, token: str, redact: Redactor) -> None:
        super().__init__(cfg, contract.rendition_publish_key(token, cfg.name), token, redact)
        parts = urlsplit(cfg.server_url)
        self._probe_at = (parts.hostname or "127.0.0.1", parts.port or contract.RTMP_PORT)
        self._probe: Probe | None = None
        self._probe_task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        watcher = asyncio.create_task(self._measure_output())
        try:
            await super().run()
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
            self._stop_probe()

    async def _measure_output(self) -> None:
        """A probe on the rendition's stream while Live (a new one for each run: its
        timestamps start again)."""
        while True:
            live = self.state == RelayState.LIVE
            if live and self._probe is None:
                host, port = self._probe_at
                self._probe = Probe(
                    host,
                    port,
                    self._token,
                    lambda: None,
                    stream=contract.RENDITION_STREAM_PREFIX + self.cfg.name,
                )
                self._probe_task = asyncio.create_task(self._probe.run())
            elif not live and self._probe is not None:
                self._stop_probe()
            await asyncio.sleep(PROBE_CHECK_EVERY)

    def _stop_probe(self) -> None:
        if self._probe is not None:
            self._probe.stop()
        if self._probe_task is not None:
            self._probe_task.cancel()
        self._probe = self._probe_task = None

    def status(self) -> RelayAgentStatus:
        doc = super().status()
        probe = self._probe
        doc["output"] = (
            probe.findings.source.video_status()
            if probe is not None and probe.findings.known
            else None
        )
        return doc


async def serve(cfg: RelayConfig, token: str, redact: Redactor) -> int:
    encoder = Encoder(cfg, token, redact)
    return await run_served(
        encoder,
        cfg.listen,
        lambda: log.info(
            "encoder agent started",
            extra={"rendition": cfg.name, "ingest": cfg.server_url, "listen": cfg.listen},
        ),
        "encoder",
    )
