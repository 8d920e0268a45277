"""A small media plane for tests and benchmarks: the ingest, one relay and one recording
nginx-rtmp sink per destination, all as `restream-operator render` makes them, on 127.0.0.1;
and what to read back from it (each destination's recordings, their tracks, the delay to
the first media of a broadcast).
"""

from __future__ import annotations

import secrets
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hack.media.harness import (
    Ingest,
    Proc,
    Processes,
    Relay,
    RtmpSink,
    StatusLog,
    flag,
    free_port,
    loopback_url,
    packets,
    relay_command,
    render,
    rendered,
    start_ingest,
    start_relay,
    wait_for,
)
from restream_operator.agent import contract
from restream_operator.agent.ffmpeg import compose_url, rtmp_app_playpath
from restream_operator.agent.ingest import parse_stat

DESTINATIONS = {
    "Youtube": "rtmp://a.rtmp.youtube.com/live2",
    "Twitch": "rtmp://live.twitch.tv/app",
}


@dataclass
class RecordingPlane:
    procs: Processes
    ingest: Ingest
    stream_key: str
    sinks: dict[str, RtmpSink] = field(default_factory=dict)  # by destination
    apps: dict[str, str] = field(default_factory=dict)  # the sink application, by destination
    relays: dict[str, Relay] = field(default_factory=dict)
    status: StatusLog = field(default_factory=StatusLog)

    def states(self) -> dict[str, str]:
        return {name: self.status.state(r) for name, r in self.relays.items()}

    def wait_all(self, state: str, timeout: float) -> None:
        wait_for(lambda: set(self.states().values()) == {state}, f"every relay {state}", timeout)

    def recordings(self) -> dict[str, list[Path]]:
        return {name: sink.recordings(self.apps[name]) for name, sink in self.sinks.items()}

    def relay_status(self, name: str) -> dict[str, Any]:
        return self.status.get(self.relays[name].status_url)


def start_plane(
    procs: Processes, root: Path, destinations: dict[str, str] | None = None
) -> RecordingPlane:
    """Every process started through ``procs`` (whose close() stops them)."""
    destinations = destinations or DESTINATIONS
    manifest = {
        "apiVersion": "restream.dev/v1alpha1",
        "kind": "LiveStream",
        "metadata": {"name": "plane", "namespace": "demo"},
        # Keys: the plane's own, by environment.
        "spec": {
            "restreams": [
                {"name": name, "serverUrl": url, "streamKey": "x"}
                for name, url in destinations.items()
            ]
        },
    }
    plan = rendered(render(manifest, root))
    key, token = f"sk-{secrets.token_urlsafe(12)}", secrets.token_urlsafe(12)
    p = RecordingPlane(procs, start_ingest(procs, plan, root, key, token), key)
    for name in destinations:
        dest_key = f"{name.lower()}-{secrets.token_hex(6)}"
        argv = plan.relays[name]
        url = flag(argv, "--destination")
        app = rtmp_app_playpath(compose_url(url, dest_key))[0]
        sink = RtmpSink(root / f"sink-{name}", free_port(), (app,)).start(procs)
        p.sinks[name], p.apps[name] = sink, app
        env = {contract.ENV_DESTINATION_KEY: dest_key, contract.ENV_PLAY_TOKEN: token}
        port = free_port()
        local = relay_command(argv, p.ingest, loopback_url(url, sink.port), port)
        p.relays[name] = start_relay(procs, Relay(name, port, local, env))
    p.wait_all("Idle", 10)
    return p


def new_recordings(p: RecordingPlane, before: dict[str, list[Path]]) -> dict[str, list[Path]]:
    return {
        name: [f for f in files if f not in before[name]] for name, files in p.recordings().items()
    }


def broadcast(p: RecordingPlane, start: Callable[[], Proc], timeout: float = 30) -> dict[str, Path]:
    """One broadcast, from relays waiting on the stream to their end: each destination's
    recording of it."""
    before = p.recordings()
    p.wait_all("Idle", 15)
    encoder = start()
    wait_for(lambda: not encoder.alive(), "the encoder to finish", timeout)
    assert encoder.popen.returncode == 0, encoder.log.read_text()[-2000:]
    p.wait_all("Idle", 15)
    new = new_recordings(p, before)
    assert all(len(files) == 1 for files in new.values()), new
    return {name: files[0] for name, files in new.items()}


def tracks(path: Path) -> dict[str, dict[str, Any]]:
    """What a recording holds, by track: packets, whether the first is a keyframe, the
    span of its timestamps."""
    every = packets(path)
    out: dict[str, dict[str, Any]] = {}
    for kind in ("video", "audio"):
        mine = [p for p in every if p.get("codec_type") == kind]
        times = [float(p["pts_time"]) for p in mine if p.get("pts_time") not in (None, "N/A")]
        if mine and times:
            out[kind] = {
                "packets": len(mine),
                "first_key": mine[0].get("flags", "").startswith("K"),
                "span": max(times) - min(times),
            }
    return out


def first_media_delays(
    p: RecordingPlane, start: Callable[[], Proc]
) -> tuple[dict[str, float], Proc]:
    """Seconds from the encoder's first packet at the ingest (nginx's stat page counting
    more than the metadata in) to each destination's first media (its recording holding
    more than the FLV header and the metadata: a keyframe is tens of kB)."""
    before = p.recordings()
    p.wait_all("Idle", 15)
    encoder = start()
    stat_url = f"http://127.0.0.1:{p.ingest.stat_port}/stat"
    first_packet: list[float] = []
    first: dict[str, float] = {}

    def arrived() -> bool:
        now = time.monotonic()
        if not first_packet:
            with urllib.request.urlopen(stat_url, timeout=2) as r:
                stat = parse_stat(r.read(), contract.APPLICATION, contract.STREAM_NAME)
            if stat is not None and stat.bytes_in > 8192:
                first_packet.append(now)
        for name, files in new_recordings(p, before).items():
            if name not in first and files and files[0].stat().st_size > 8192:
                first[name] = now
        return bool(first_packet) and len(first) == len(p.sinks)

    wait_for(arrived, "media at every destination", 20, 0.005)
    return {name: at - first_packet[0] for name, at in first.items()}, encoder
