"""The ingest's probe: plays its own stream as a relay does and says what really arrives.

nginx-rtmp's stat page guesses codecs from one nibble, which is wrong for Enhanced RTMP
(an HEVC publish shows as "ScreenVideo"), and cannot say whether a track the encoder
announced ever reached a player. While a broadcast is on, the ingest agent plays the
stream on loopback with the relays' play token (through the same on_play check; it
never holds the publishing key) and records, per track, the codec onMetaData announced
and the codec of the first message that arrived. What arrives at the probe is what a
relay gets: nginx-rtmp forwards no Enhanced RTMP video to players (see codecs.py), so
for such a publish only onMetaData arrives, and its FourCC names the codec.

It stops with the broadcast and reconnects (with backoff) if its play drops during one.
Its cost: one more nginx player, and for each message a look at its first bytes until
both tracks have arrived (measured in the README: well under 1 % of a core at 6 Mbit/s).
nginx lists it among the stream's clients with flashver ``restream-probe``; nothing in
the product counts players.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from . import codecs, contract, rtmp
from .backoff import Backoff
from .codecs import Codec
from .contract import TrackStatus
from .source import Source

log = logging.getLogger("restream.probe")

FLASH_VER = "restream-probe"
CONNECT_TIMEOUT = 5.0


@dataclass
class Track:
    announced: Codec | None = None
    arrived: Codec | None = None

    @property
    def codec(self) -> Codec | None:
        """What arrived beats what was announced."""
        return self.arrived or self.announced

    def status(self) -> TrackStatus:
        return {
            "announced": self.announced.name if self.announced else None,
            "arrived": self.arrived.name if self.arrived else None,
            "enhanced": any(c is not None and c.enhanced for c in (self.announced, self.arrived)),
        }


@dataclass
class Findings:
    """What the probe learned of one broadcast (kept across its reconnects)."""

    video: Track = field(default_factory=Track)
    audio: Track = field(default_factory=Track)
    played_at: float | None = None  # monotonic: when the current play started
    video_at: float | None = None  # when video first arrived on the current play
    # Measured on the current play only: a new play starts its timestamps again.
    source: Source = field(default_factory=Source)

    @property
    def known(self) -> bool:
        return self.played_at is not None

    def on_message(self, msg: rtmp.Message, now: float) -> bool:
        """Takes one message in; True when it changed what is known (the measurements
        of source.py change with every message, and are not news: they are read when
        the status is asked for)."""
        if msg.type_id == rtmp.VIDEO:
            self.source.on_video(msg.payload, msg.timestamp)
            return self._on_video(msg.payload, now)
        if msg.type_id == rtmp.AUDIO:
            self.source.on_audio(msg.payload, msg.timestamp)
            if self.audio.arrived is not None:
                return False
            self.audio.arrived = codecs.audio_codec(msg.payload)
            return self.audio.arrived is not None
        if msg.type_id == rtmp.DATA_AMF0:
            return self._on_data(msg.payload)
        return False

    def _on_video(self, payload: bytes, now: float) -> bool:
        if self.video.arrived is not None:
            if self.video_at is None:  # the first video of a play after a reconnect
                self.video_at = now
            return False
        codec = codecs.video_codec(payload)
        if codec is None:
            return False
        self.video.arrived, self.video_at = codec, now
        return True

    def _on_data(self, payload: bytes) -> bool:
        try:
            values = rtmp.amf0_decode(payload)
        except rtmp.AmfError:
            return False
        if "onMetaData" not in values:
            return False
        meta = next((v for v in values if isinstance(v, dict)), None)
        if meta is None:
            return False
        before = (self.video.announced, self.audio.announced)
        self.video.announced = codecs.announced_video(meta.get("videocodecid"))
        self.audio.announced = codecs.announced_audio(meta.get("audiocodecid"))
        return (self.video.announced, self.audio.announced) != before

    def _deadlines(self) -> dict[str, float]:
        """When each announced track that has not arrived counts as missing (monotonic)."""
        if self.played_at is None:
            return {}
        out = {}
        if self.video.announced and not self.video.arrived:
            out["video"] = self.played_at + contract.VIDEO_TRACK_TIMEOUT
        if self.audio.announced and not self.audio.arrived:
            # nginx-rtmp holds audio until a player has video: count from the first video,
            # or, with none announced or none coming, from the play.
            if self.video_at is not None:
                out["audio"] = self.video_at + contract.TRACK_TIMEOUT
            elif self.video.announced:
                out["audio"] = self.played_at + contract.VIDEO_TRACK_TIMEOUT
            else:
                out["audio"] = self.played_at + contract.TRACK_TIMEOUT
        return out

    def missing(self, now: float) -> list[str]:
        """Tracks announced and not arrived within their timeouts (contract.py)."""
        deadlines = self._deadlines()
        return [kind for kind in contract.TRACK_KINDS if deadlines.get(kind, now + 1) <= now]

    def next_deadline(self, now: float) -> float | None:
        """The next moment after ``now`` when ``missing`` changes if nothing arrives
        (monotonic), or None."""
        return min((t for t in self._deadlines().values() if t > now), default=None)

    def not_relayed(self) -> str | None:
        return codecs.not_relayed(self.video.codec, self.audio.codec)

    def relayable(self) -> bool | None:
        if self.not_relayed() is not None:
            return False
        return True if (self.video.codec or self.audio.codec) else None


def missing_text(kinds: list[str]) -> str:
    """``the encoder announced audio but has sent none for 5 s``."""
    if set(kinds) >= {"video", "audio"}:
        return (
            "the encoder announced video and audio but has sent neither "
            f"for {contract.VIDEO_TRACK_TIMEOUT:g} s"
        )
    (kind,) = kinds
    bound = contract.VIDEO_TRACK_TIMEOUT if kind == "video" else contract.TRACK_TIMEOUT
    return f"the encoder announced {kind} but has sent none for {bound:g} s"


class Probe:
    """Plays ``stream`` (with the play token) from the local nginx until ``stop``."""

    def __init__(
        self,
        host: str,
        port: int,
        token: str,
        on_change: Callable[[], None],
        stream: str = contract.STREAM_NAME,
    ) -> None:
        self._host, self._port, self._token, self._stream = host, port, token, stream
        self._on_change = on_change
        self.findings = Findings()
        self.plays = 0  # plays started, for the tests and /metrics
        self._stop = asyncio.Event()
        self._backoff = Backoff(0.25, 5.0)

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        while not self._stop.is_set():
            why = "the server closed it"
            try:
                await self._play_once()
            except (OSError, TimeoutError, rtmp.RtmpError) as e:
                why = str(e) or type(e).__name__
            self.findings.played_at = self.findings.video_at = None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self._backoff.next_delay())
            if self._stop.is_set():
                break  # the end of the broadcast, which also ends the play: no news
            # The first attempt may race nginx's own start of the stream: debug.
            level = logging.WARNING if self.plays else logging.DEBUG
            log.log(level, "probe play ended during the broadcast: %s; playing again", why)

    async def _play_once(self) -> None:
        client = await rtmp.Client.connect(
            self._host,
            self._port,
            contract.APPLICATION,
            flash_ver=FLASH_VER,
            timeout=CONNECT_TIMEOUT,
        )
        watcher = asyncio.create_task(self._watch_deadlines())
        try:
            await asyncio.wait_for(
                client.play(f"{self._stream}?token={self._token}"), CONNECT_TIMEOUT
            )
            self.plays += 1
            self._backoff.reset()
            self.findings.played_at = time.monotonic()
            self.findings.source = Source()
            self._on_change()
            stopped = asyncio.create_task(self._stop.wait())
            reading = asyncio.create_task(self._read(client))
            try:
                done, _ = await asyncio.wait(
                    {stopped, reading}, return_when=asyncio.FIRST_COMPLETED
                )
            finally:  # also when this task is cancelled: no orphan left to fail unseen
                for task in (stopped, reading):
                    task.cancel()
                await asyncio.gather(stopped, reading, return_exceptions=True)
            if reading in done:
                reading.result()  # raises why the play ended
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
            await client.close()

    async def _read(self, client: rtmp.Client) -> None:
        findings = self.findings
        async for msg in client.messages():
            if findings.on_message(msg, time.monotonic()):
                self._on_change()

    async def _watch_deadlines(self) -> None:
        """Tells the ingest when a track becomes missing with nothing else happening."""
        while True:
            deadline = self.findings.next_deadline(time.monotonic())
            if deadline is None:
                await asyncio.sleep(1.0)  # until the play starts or metadata announces
                continue
            await asyncio.sleep(max(0.0, deadline - time.monotonic()) + 0.01)
            if self.findings.next_deadline(time.monotonic()) != deadline:
                self._on_change()
