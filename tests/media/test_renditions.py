"""Renditions on the real media plane: what `restream-operator render` makes of a
LiveStream with renditions (the ingest's nginx.conf, the encoders' and relays' commands)
run as local processes with real nginx-rtmp and ffmpeg, recorded by a real nginx-rtmp
sink and checked with ffprobe.

A 1280x720 30 fps source with a keyframe every 5 s at about 4 Mbit/s. Destination A
gets it as published; B and C get rendition 480p (one encoder for both), D gets 360p.
B then moves to the source while live. The status the operator would write is computed
from the real agents' /status documents by the same pure function the operator runs.
"""

from __future__ import annotations

import itertools
import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hack.media.harness import (
    GrowthSampler,
    Processes,
    Relay,
    RtmpSink,
    StatusLog,
    children,
    encoder_command,
    flag,
    free_port,
    loopback_url,
    relay_command,
    render,
    rendered,
    start_ingest,
    start_publisher,
    start_relay,
    wait_for,
    workdir,
)
from restream_operator import models
from restream_operator.agent import contract
from restream_operator.render import owner_from_object
from restream_operator.settings import Settings
from restream_operator.status import Observed, compute_status

from .test_relay_plane import sink_app

pytestmark = [pytest.mark.media, pytest.mark.timeout(240)]

FPS = 30
SOURCE_GOP_S = 5
RENDITIONS: list[dict[str, Any]] = [
    {"name": "480p", "video": {"height": 480, "fps": FPS, "bitrateKbps": 1200,
                               "keyframeIntervalSeconds": 2}, "audio": {"bitrateKbps": 128}},
    {"name": "360p", "video": {"height": 360, "fps": FPS, "bitrateKbps": 800,
                               "keyframeIntervalSeconds": 2}, "audio": {"bitrateKbps": 96}},
]  # fmt: skip
# name -> (serverUrl, rendition): A and B on YouTube's host, for its keyframe rule.
DESTINATIONS = {
    "A": ("rtmp://a.rtmp.youtube.com/live2", None),
    "B": ("rtmp://b.rtmp.youtube.com/live3", "480p"),
    "C": ("rtmp://live.example-c.com/c", "480p"),
    "D": ("rtmp://live.example-d.com/d", "360p"),
}


def manifest(renditions: dict[str, str | None]) -> dict[str, Any]:
    return {
        "apiVersion": models.API_VERSION,
        "kind": models.KIND,
        "metadata": {"name": "show", "namespace": "demo", "uid": "u"},
        "spec": {
            "renditions": RENDITIONS,
            "restreams": [
                {"name": name, "serverUrl": url, "streamKey": "x"}
                | ({"rendition": renditions[name]} if renditions[name] else {})
                for name, (url, _) in DESTINATIONS.items()
            ],
        },
    }


def ffprobe(path: Path, entries: str, stream: str) -> list[dict[str, Any]]:
    import json  # noqa: PLC0415

    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", stream, "-show_entries", entries,
         "-of", "json", str(path)],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    doc = json.loads(out.stdout)
    return list(doc.get("packets") or doc.get("streams") or [])


def keyframe_gaps(path: Path) -> list[float]:
    times = [
        float(p["pts_time"])
        for p in ffprobe(path, "packet=pts_time,flags", "v")
        if "K" in p.get("flags", "")
    ]
    return [b - a for a, b in itertools.pairwise(times)]


def kbps(path: Path, stream: str) -> float:
    packets = ffprobe(path, "packet=pts_time,size", stream)
    times = [float(p["pts_time"]) for p in packets]
    size = sum(int(p["size"]) for p in packets)
    return size * 8 / (max(times) - min(times)) / 1000


def libx264_processes(roots: list[int]) -> dict[int, str]:
    """ffmpeg processes under ``roots`` that encode H.264, with their command lines."""
    found = {}
    for root in roots:
        for pid in children(root):
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if "libx264" in cmd:
                found[pid] = cmd
    return found


class World:
    def __init__(self, procs: Processes, root: Path) -> None:
        self.procs, self.root = procs, root
        self.key, self.token = f"sk-{secrets.token_urlsafe(12)}", secrets.token_urlsafe(16)
        self.keys = {name: f"{name.lower()}-{secrets.token_hex(6)}" for name in DESTINATIONS}
        self.apps = {n: sink_app(url, self.keys[n]) for n, (url, _) in DESTINATIONS.items()}
        self.sink = RtmpSink(root / "sink", free_port(), tuple(self.apps.values())).start(procs)
        self.plan = rendered(render(manifest({n: r for n, (_, r) in DESTINATIONS.items()}), root))
        self.ingest = start_ingest(procs, self.plan, root, self.key, self.token)
        self.encoders: dict[str, Relay] = {}
        for name, argv in self.plan.encoders.items():
            assert self.plan.encoder_env[name] == [contract.ENV_PLAY_TOKEN]  # nothing else
            port = free_port()
            enc = Relay(name, port, encoder_command(argv, self.ingest, port),
                        {contract.ENV_PLAY_TOKEN: self.token})  # fmt: skip
            self.encoders[name] = start_relay(procs, enc)
        self.relays = {
            name: self.start_relay(name, argv) for name, argv in self.plan.relays.items()
        }

    def start_relay(self, name: str, argv: list[str]) -> Relay:
        port = free_port()
        url = loopback_url(flag(argv, "--destination"), self.sink.port)
        env = {contract.ENV_DESTINATION_KEY: self.keys[name], contract.ENV_PLAY_TOKEN: self.token}
        return start_relay(
            self.procs, Relay(name, port, relay_command(argv, self.ingest, url, port), env)
        )

    def states(self, log: StatusLog) -> dict[str, str]:
        agents = {**self.relays, **{f"rendition {n}": e for n, e in self.encoders.items()}}
        return {name: log.state(agent) for name, agent in agents.items()}


@pytest.fixture
def world() -> Iterator[World]:
    with workdir("restream-renditions-") as root:
        procs = Processes(root)
        try:
            yield World(procs, root)
        finally:
            procs.close()


def test_renditions_encode_once_and_each_destination_gets_its_profile(world: World) -> None:
    log = StatusLog()
    # Only the renditions in use have an encoder: both are.
    assert set(world.encoders) == {"480p", "360p"}
    wait_for(lambda: set(world.states(log).values()) == {"Idle"}, "everything Idle", 15)

    publisher = start_publisher(
        world.procs, world.ingest, world.key, seconds=26, size="1280x720", fps=FPS,
        gop=SOURCE_GOP_S * FPS, video_bitrate="4000k",
        audio_source="anoisesrc=sample_rate=48000:amplitude=0.2",
    )  # fmt: skip
    wait_for(lambda: set(world.states(log).values()) == {"Live"}, "everything Live", 30)

    # One encoder process per rendition, however many destinations use it: B and C share
    # the 480p encode; no relay transcodes.
    roots = [p.proc.pid for p in (*world.encoders.values(), *world.relays.values()) if p.proc]
    x264 = libx264_processes(roots)
    assert len(x264) == 2, x264
    assert sum("scale=-2:480" in cmd for cmd in x264.values()) == 1
    assert sum("scale=-2:360" in cmd for cmd in x264.values()) == 1
    assert not libx264_processes([r.proc.pid for r in world.relays.values() if r.proc])

    # The source's keyframe interval, measured by the ingest (two intervals needed).
    def source_video() -> dict[str, Any]:
        return dict(log.get(world.ingest.status_url).get("sourceVideo") or {})

    wait_for(lambda: source_video().get("keyframeIntervalSeconds"), "the measured GOP", 20)
    assert abs(source_video()["keyframeIntervalSeconds"] - SOURCE_GOP_S) <= 0.1

    # What the operator would write, from these agents' documents.
    ingest_doc = log.get(world.ingest.status_url)
    encoder_docs = {n: log.get(e.status_url) for n, e in world.encoders.items()}
    relay_docs = {n: log.get(r.status_url) for n, r in world.relays.items()}
    owner = owner_from_object(manifest({n: r for n, (_, r) in DESTINATIONS.items()}))
    observed = Observed(ingest_agent=ingest_doc, relay_agents=relay_docs,  # type: ignore[arg-type]
                        encoder_agents=encoder_docs)  # type: ignore[arg-type]  # fmt: skip
    status = compute_status(owner, 1, {}, observed, Settings(), "2025-01-01T00:00:00+00:00")
    assert abs(status["ingest"]["video"]["keyframeIntervalSeconds"] - SOURCE_GOP_S) <= 0.1
    entries = {r["name"]: r for r in status["restreams"]}
    (warning,) = entries["A"]["warnings"]
    assert warning["rule"] == "KeyframeInterval" and "every 5 s" in warning["message"]
    assert "rendition '480p'" in warning["message"]  # what would fix it
    assert "warnings" not in entries["B"]  # YouTube too, but on a 2 s-keyframe rendition
    renditions = {r["name"]: r for r in status["renditions"]}
    assert renditions["480p"]["state"] == "Live"
    assert renditions["480p"]["restreams"] == ["B", "C"]
    wait_for(lambda: (log.get(world.encoders["360p"].status_url).get("output") or {}).get("height"),
             "the 360p encode measured", 10)  # fmt: skip
    output = log.get(world.encoders["360p"].status_url)["output"]
    assert (output["width"], output["height"]) == (640, 360)

    # B moves to the source while live: only B's relay changes (its pod is replaced).
    before = world.sink.recordings(world.apps["B"])
    switched = rendered(
        render(manifest({"A": None, "B": None, "C": "480p", "D": "360p"}), world.root)
    )
    assert switched.encoders == world.plan.encoders
    assert {n for n in DESTINATIONS if switched.relays[n] != world.plan.relays[n]} == {"B"}
    c_sink = world.sink
    with GrowthSampler({"C": lambda: c_sink.total_bytes(world.apps["C"])}, every=0.1) as growth:
        time.sleep(1.0)
        old_b = world.relays["B"]
        assert old_b.proc is not None
        old_b.proc.stop()
        started = time.monotonic()
        world.relays["B"] = world.start_relay("B", switched.relays["B"])
        wait_for(lambda: len(world.sink.recordings(world.apps["B"])) > len(before)
                 and world.sink.recordings(world.apps["B"])[-1].stat().st_size > 100_000,
                 "B's sink to get the source", 10)  # fmt: skip
        took = time.monotonic() - started
        time.sleep(2.0)
    assert took <= 10
    assert growth.longest_stall("C") <= 1.0, growth.longest_stall("C")

    wait_for(lambda: not publisher.alive(), "the publisher to finish", 40)
    wait_for(lambda: set(world.states(log).values()) == {"Idle"}, "everything Idle again", 20)

    rec = {n: world.sink.recordings(app) for n, app in world.apps.items()}
    # A: the source as published: same codec parameters and keyframe spacing.
    (a,) = rec["A"]
    (video,) = ffprobe(a, "stream=codec_name,width,height,profile", "v")
    assert (video["codec_name"], video["width"], video["height"]) == ("h264", 1280, 720)
    assert all(abs(g - SOURCE_GOP_S) <= 1 / FPS for g in keyframe_gaps(a)[:-1])
    # B, C: 480p; D: 360p; keyframes every 2 s (±1 frame); bitrate ±20 %; AAC at the
    # profile's bitrate.
    cases = (("B", rec["B"][:1], RENDITIONS[0]), ("C", rec["C"], RENDITIONS[0]),
             ("D", rec["D"], RENDITIONS[1]))  # fmt: skip
    for name, files, rendition in cases:
        (path,) = files
        (video,) = ffprobe(path, "stream=codec_name,height", "v")
        (audio,) = ffprobe(path, "stream=codec_name,sample_rate", "a")
        profile = rendition["video"]
        assert (video["codec_name"], video["height"]) == ("h264", profile["height"]), name
        gaps = keyframe_gaps(path)
        assert gaps and all(abs(g - 2) <= 1 / FPS + 1e-3 for g in gaps), (name, gaps)
        assert abs(kbps(path, "v") / profile["bitrateKbps"] - 1) <= 0.2, (name, kbps(path, "v"))
        assert audio["codec_name"] == "aac" and audio["sample_rate"] == "48000"
        assert abs(kbps(path, "a") / rendition["audio"]["bitrateKbps"] - 1) <= 0.2, name
    # B after the switch: the source.
    (video,) = ffprobe(rec["B"][-1], "stream=height", "v")
    assert video["height"] == 720

    # No secret in any agent's /status or log, nor in the encoders' ffmpeg arguments.
    publish_keys = [contract.rendition_publish_key(world.token, n) for n in world.encoders]
    for cmd in x264.values():
        assert not any(k in cmd for k in (world.token, *publish_keys)), cmd
    # (The publisher holds the stream key and the sink, standing for YouTube, the keys.)
    ours = [p for p in world.procs.procs if p.name != "publisher" and not p.name.startswith("sink")]
    texts = {
        **{f"status {i}": t for i, t in enumerate(log.documents)},
        **{p.log.name: p.log.read_text() for p in ours},
    }
    for secret in (world.key, world.token, *world.keys.values(), *publish_keys):
        leaks = [where for where, text in texts.items() if secret in text]
        assert not leaks, leaks
