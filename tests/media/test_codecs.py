"""What is relayed and what is not, with real encoders, nginx-rtmp and ffmpeg on 127.0.0.1.

An HEVC publish over Enhanced RTMP (hack/media/ertmp.py: real libx265 output, framed as
OBS 30 frames it) is reported by the ingest for what it is, and the relays wait saying
why instead of cycling Retrying; H.264 with AAC or MP3 is relayed, over RTMP and SRT, and
the probe sees both tracks arrive. The ingest and relays run as `restream-operator
render` renders them (examples/api-video-compatible.yaml plus an SRT destination).

Where a server does forward Enhanced RTMP frames to players (nginx-rtmp with ``wait_key
off``, which the product's ingest does not use), the RTMP client and the probe's
classifier see real HEVC, AV1 and VP9 frames; the HEVC one is turned back into Annex B
and decoded by ffmpeg, so the test encoder is known to send what the spec says.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bench.relay import start_nginx
from hack.media.encoder import AAC, MP3
from hack.media.harness import (
    Ingest,
    Proc,
    Processes,
    Relay,
    RtmpSink,
    SrtSink,
    StatusLog,
    codecs_and_duration,
    example,
    flag,
    free_port,
    free_udp_port,
    loopback_url,
    port_open,
    relay_command,
    render,
    rendered,
    start_ertmp_publisher,
    start_ingest,
    start_publisher,
    start_relay,
    wait_for,
    workdir,
)
from restream_operator.agent import codecs, contract, rtmp
from restream_operator.agent.ingest import parse_stat
from restream_operator.agent.probe import Findings, Probe
from restream_operator.render.nginx import RTMP_MODULE

from .test_relay_plane import sink_app

pytestmark = [pytest.mark.media, pytest.mark.timeout(180)]

SRT = "Custom SRT"
RTMP_RELAYS = ("Youtube", "Twitch")
HEVC_REASON = (
    "the encoder publishes HEVC video over Enhanced RTMP; this release relays H.264 video"
    " with AAC or MP3 audio, over classic RTMP: set the encoder's video codec to H.264"
    " (x264 or NVENC H.264)"
)


@dataclass
class World:
    procs: Processes
    root: Path
    stream_key: str
    ingest: Ingest
    sink: RtmpSink
    srt: SrtSink
    apps: dict[str, str]  # restream -> the sink's application it lands in
    relays: dict[str, Relay] = field(default_factory=dict)
    status: StatusLog = field(default_factory=StatusLog)

    def ingest_status(self) -> dict[str, Any]:
        return self.status.get(self.ingest.status_url)

    def relay_status(self, name: str) -> dict[str, Any]:
        return self.status.get(self.relays[name].status_url)

    def states(self) -> dict[str, str]:
        return {name: self.status.state(r) for name, r in self.relays.items()}

    def wait_all(self, state: str, timeout: float) -> None:
        wait_for(lambda: set(self.states().values()) == {state}, f"every relay {state}", timeout)

    def new_recordings(self, before: dict[str, set[Path]]) -> dict[str, list[Path]]:
        return {
            name: [r for r in self.sink.recordings(app) if r not in before[name]]
            for name, app in self.apps.items()
        }

    def recordings(self) -> dict[str, set[Path]]:
        return {name: set(self.sink.recordings(app)) for name, app in self.apps.items()}


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    with workdir("restream-codecs-") as root:
        procs = Processes(root)
        try:
            doc = example()
            doc["spec"]["restreams"].append(
                {"name": SRT, "serverUrl": "srt://srt.example.net:9000", "streamKey": "x"}
            )
            plan = rendered(render(doc, root))
            keys = {name: f"k-{secrets.token_hex(6)}" for name in plan.relays}
            stream_key, token = f"sk-{secrets.token_hex(8)}", secrets.token_hex(8)
            apps = {
                n: sink_app(flag(plan.relays[n], "--destination"), keys[n]) for n in RTMP_RELAYS
            }
            sink = RtmpSink(root / "sink", free_port(), tuple(sorted(set(apps.values())))).start(
                procs
            )
            srt = SrtSink(root / "srt", free_udp_port()).start(procs)
            ingest = start_ingest(procs, plan, root, stream_key, token)
            w = World(procs, root, stream_key, ingest, sink, srt, apps)
            for name, argv in plan.relays.items():
                url = flag(argv, "--destination")
                port = srt.port if name == SRT else sink.port
                agent_port = free_port()
                local = relay_command(argv, ingest, loopback_url(url, port), agent_port)
                env = {contract.ENV_DESTINATION_KEY: keys[name], contract.ENV_PLAY_TOKEN: token}
                w.relays[name] = start_relay(procs, Relay(name, agent_port, local, env))
            w.wait_all("Idle", 10)
            yield w
        finally:
            procs.close()


def _nginx_stat_video(w: World) -> str | None:
    url = f"http://127.0.0.1:{w.ingest.stat_port}/stat"
    with urllib.request.urlopen(url, timeout=2) as r:
        stat = parse_stat(r.read(), contract.APPLICATION, contract.STREAM_NAME)
    return stat.video_codec if stat is not None else None


def test_hevc_over_enhanced_rtmp_is_named_and_the_relays_wait_saying_why(world: World) -> None:
    w = world
    before = w.recordings()
    relay_logs = {n: len(r.log_lines()) for n, r in w.relays.items()}
    pub = start_ertmp_publisher(w.procs, w.ingest.publish_url(), w.stream_key, "hevc")
    try:
        wait_for(lambda: w.ingest_status().get("relayable") is False, "the probe's verdict", 10)
        doc = w.ingest_status()
        assert (doc["videoCodec"], doc["audioCodec"]) == ("HEVC", "AAC")
        assert doc["notRelayableReason"] == HEVC_REASON
        assert doc["tracks"]["video"] == {"announced": "HEVC", "arrived": None, "enhanced": True}
        # What the issue saw: nginx's own reading of the same publish.
        assert _nginx_stat_video(w) == "ScreenVideo"
        wait_for(
            lambda: all(w.relay_status(n)["lastError"] == HEVC_REASON for n in w.relays),
            "every relay waiting with the reason",
            10,
        )
        # ~10 s of it: no ffmpeg restarts, no Retrying, nothing reaches a destination.
        seen: set[str] = set()
        end = time.monotonic() + 10
        while time.monotonic() < end:
            seen |= set(w.states().values())
            time.sleep(0.2)
        assert seen == {"Idle"}, seen
        for name, relay in w.relays.items():
            status = w.relay_status(name)
            assert status["restarts"] == 0 and status["lastError"] == HEVC_REASON
            started = [
                line for line in relay.log_lines()[relay_logs[name] :]
                if line["msg"] == "ffmpeg started"
            ]  # fmt: skip
            assert len(started) <= 1, f"{name}: ffmpeg started {len(started)} times"
        assert all(new == [] or all(p.stat().st_size < 1024 for p in new)
                   for new in w.new_recordings(before).values())  # fmt: skip
        # Both tracks were announced; nginx forwards neither to players.
        wait_for(
            lambda: w.ingest_status()["missingTracks"] == ["video", "audio"],
            "both tracks reported missing",
            contract.VIDEO_TRACK_TIMEOUT,
        )
        assert pub.alive(), "the encoder is kept (reported, not refused)"
    finally:
        pub.stop(signal.SIGINT)
    wait_for(lambda: not w.ingest_status()["publishing"], "the broadcast to end", 10)
    doc = w.ingest_status()
    assert doc["relayable"] is None and doc["tracks"] is None and doc["videoCodec"] is None


@pytest.mark.parametrize(("audio", "name"), [(AAC, "AAC"), (MP3, "MP3")], ids=["aac", "mp3"])
def test_h264_with_aac_or_mp3_is_relayed_over_rtmp_and_srt_and_both_tracks_arrive(
    world: World, audio: tuple[str, ...], name: str
) -> None:
    """What the relays' ffmpeg copies into FLV and into MPEG-TS, and the probe's account."""
    w = world
    before = w.recordings()
    assert w.srt.proc is not None
    if not w.srt.proc.alive():  # an SRT listener takes one caller: the last broadcast's
        w.srt.start(w.procs)
    srt_out = w.srt.outputs[-1]
    pub = start_publisher(w.procs, w.ingest, w.stream_key, 12, audio=audio)
    w.wait_all("Live", 20)
    doc = w.ingest_status()
    assert (doc["videoCodec"], doc["audioCodec"]) == ("H264", name)
    assert doc["relayable"] is True and doc["notRelayableReason"] is None
    assert doc["tracks"] == {
        "video": {"announced": "H264", "arrived": "H264", "enhanced": False},
        "audio": {"announced": name, "arrived": name, "enhanced": False},
    }
    time.sleep(contract.TRACK_TIMEOUT + 1)
    assert w.ingest_status()["missingTracks"] == []
    assert pub.popen.wait(20) == 0
    w.wait_all("Idle", 10)
    expected = {"h264", name.lower()}
    for relay, recs in w.new_recordings(before).items():
        assert len(recs) == 1, f"{relay}: {recs}"
        got, duration = codecs_and_duration(recs[0])
        assert got == expected and duration > 8, (relay, got, duration)
    assert codecs_and_duration(srt_out)[0] == expected


# -- where a server forwards Enhanced RTMP to players ---------------------------------------

PLAIN_APP = """        application live {
            live on;
            wait_key off;
            wait_video off;
        }"""


def _annex_b(hvcc: bytes, samples: list[bytes]) -> bytes:
    """HEVC in FLV form (hvcC, 4-byte length-prefixed NAL units) as an Annex B stream."""
    out = bytearray()
    pos, arrays = 23, hvcc[22]
    for _ in range(arrays):
        count = int.from_bytes(hvcc[pos + 1 : pos + 3], "big")
        pos += 3
        for _ in range(count):
            n = int.from_bytes(hvcc[pos : pos + 2], "big")
            out += b"\0\0\0\1" + hvcc[pos + 2 : pos + 2 + n]
            pos += 2 + n
    for sample in samples:
        i = 0
        while i + 4 <= len(sample):
            n = int.from_bytes(sample[i : i + 4], "big")
            out += b"\0\0\0\1" + sample[i + 4 : i + 4 + n]
            i += 4 + n
    return bytes(out)


async def _play_from_the_start(
    port: int, publish: Callable[[], object], seconds: float
) -> list[rtmp.Message]:
    """Plays before ``publish()`` starts the publisher (nginx's idle_streams), so that the
    SequenceStart, which nginx caches for H.264 only, reaches the player too."""
    client = await rtmp.Client.connect("127.0.0.1", port, "live")
    got: list[rtmp.Message] = []
    try:
        await client.play("stream")
        publish()

        async def read() -> None:
            async for msg in client.messages():
                got.append(msg)

        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(read(), seconds)
    finally:
        await client.close()
    return got


CODEC_NAMES = {"hevc": ("HEVC", b"hvc1"), "av1": ("AV1", b"av01"), "vp9": ("VP9", b"vp09")}


@pytest.mark.parametrize("codec", ["hevc", "av1", "vp9"])
def test_enhanced_rtmp_frames_are_named_where_a_server_forwards_them(codec: str) -> None:
    with workdir("restream-ertmp-") as root:
        procs = Processes(root)
        try:
            port = free_port()
            start_nginx(procs, root / "nginx", port, PLAIN_APP)
            url = f"rtmp://127.0.0.1:{port}/live"
            pubs: list[Proc] = []

            def publish() -> None:
                pubs.append(start_ertmp_publisher(procs, url, "stream", codec, seconds=30))

            messages = asyncio.run(_play_from_the_start(port, publish, 5.0))
            assert pubs[0].alive(), pubs[0].log.read_text()[-2000:]
        finally:
            procs.close()
    findings = Findings(played_at=0.0)
    for msg in messages:
        findings.on_message(msg, 1.0)
    name, fourcc = CODEC_NAMES[codec]
    assert findings.video.announced == codecs.Codec(name, enhanced=True)
    assert findings.video.arrived == codecs.Codec(name, enhanced=True)
    assert findings.audio.arrived == codecs.Codec("AAC")
    video = [m.payload for m in messages if m.type_id == rtmp.VIDEO]
    # The ExVideoTagHeader: IsExHeader, a keyframe's SequenceStart first, then frames.
    assert video[0][0] == 0x90 and video[0][1:5] == fourcc
    assert {v[0] & 0x0F for v in video[1:]} <= {1, 3} and all(v[0] & 0x80 for v in video)
    if codec == "hevc":
        stream = root.with_name(root.name + ".hevc")
        try:
            stream.write_bytes(
                _annex_b(video[0][5:], [v[5 + 3 * (v[0] & 0x0F == 1) :] for v in video[1:]])
            )
            out = subprocess.run(
                ["ffprobe", "-v", "error", "-count_frames", "-show_entries",
                 "stream=codec_name,nb_read_frames", "-of", "csv=p=0", str(stream)],
                capture_output=True, text=True, check=True, timeout=60,
            )  # fmt: skip
        finally:
            stream.unlink(missing_ok=True)
        codec_name, frames = out.stdout.strip().split(",")
        assert codec_name == "hevc" and int(frames) >= len(video) - 2, out.stdout


CONTROL_CONF = """load_module {module};
worker_processes 1;
daemon off;
pid {root}/nginx.pid;
error_log stderr warn;
events {{ worker_connections 64; }}
rtmp {{ server {{ listen 127.0.0.1:{port}; access_log off;
    application live {{ live on; }} }} }}
http {{ access_log off; client_body_temp_path {root}/body;
    server {{ listen 127.0.0.1:{http}; location /control {{ rtmp_control all; }} }} }}
"""


def test_the_probe_reconnects_when_its_play_drops_and_leaves_no_task_when_cancelled() -> None:
    """nginx-rtmp's control module drops the probe's session mid-broadcast."""
    with workdir("restream-probe-") as root:
        procs = Processes(root)
        try:
            port, http = free_port(), free_port()
            conf = root / "nginx.conf"
            conf.write_text(
                CONTROL_CONF.format(module=RTMP_MODULE, root=root, port=port, http=http)
            )
            procs.start("nginx", ["nginx", "-c", str(conf), "-e", "stderr", "-p", f"{root}/"])
            wait_for(lambda: port_open(port) and port_open(http), "nginx", 10)
            ingest = Ingest(port, 0, 0, 0, root, conf)
            start_publisher(procs, ingest, "stream")

            async def scenario() -> None:
                changes: list[float] = []
                probe = Probe("127.0.0.1", port, "unused", lambda: changes.append(1.0))
                task = asyncio.create_task(probe.run())
                try:
                    await _until(lambda: probe.findings.audio.arrived is not None, 10)
                    assert probe.plays == 1
                    drop = f"http://127.0.0.1:{http}/control/drop/subscriber?app=live&name=stream"
                    body = await asyncio.to_thread(
                        lambda: urllib.request.urlopen(drop, timeout=2).read()
                    )
                    assert body.strip() == b"1", body  # one subscriber: the probe
                    await _until(lambda: probe.plays == 2, 10)
                    assert probe.findings.video.arrived == codecs.Codec("H264")
                    assert probe.findings.played_at is not None
                    # The ingest agent cancels the probe at a broadcast's end: nothing of
                    # it may stay behind, to fail later where nobody looks.
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
                    assert asyncio.all_tasks() == {asyncio.current_task()}
                finally:
                    probe.stop()
                    await asyncio.wait_for(asyncio.gather(task, return_exceptions=True), 5)

            asyncio.run(scenario())
        finally:
            procs.close()


async def _until(what: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)
