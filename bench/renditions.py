"""Rendition benchmark on 127.0.0.1 (not a test; prints figures).

1. CPU of one rendition encoder as the operator renders it (the encoder agent and its
   ffmpeg, the whole process tree, from /proc) against plain ffmpeg running the same
   transcode (the same options, from the same ingest, publishing back to it), side by
   side in one run: both run at once, measured over the same windows; medians over the
   windows and the ratio (DESIGN §8: at most 1.05x). For each profile (720p30 and 1080p30 by
   default) this is also what one rendition costs on this machine, in cores.
2. What sharing saves: N destinations on one rendition (1 encoder + N relays that copy
   its stream to the destinations) against N separate transcodes (one plain ffmpeg
   per destination, as tools that transcode per output run), one after the other.

The source is a 1080p30 H.264 clip at 6 Mbit/s + AAC, a keyframe every 2 s, encoded
once and published with `-c copy`, looped, so that the publisher costs next to nothing.

    .venv/bin/python -m bench.renditions [--seconds 10] [--windows 3] [--destinations 3]
    .venv/bin/python -m bench.renditions --smoke     # seconds: that it runs (make test)
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import parse_args
from bench.relay import cpu_seconds, publish, start_nginx
from hack.media import harness as h
from restream_operator.agent import cli as agent_cli
from restream_operator.agent import contract
from restream_operator.agent.encoder import transcode_args

SMOKE = {
    "seconds": 1.5,
    "windows": 1,
    "destinations": 2,
    "heights": "96",
    "share_height": 96,
    "source": "320x180",
    "clip_seconds": 4,
    "settle": 1.0,
}
# A broadcaster's bitrate for each height (Twitch's and YouTube's recommendations).
KBPS = {1080: 6000, 720: 3000, 480: 1200, 360: 800}


def rendition(height: int) -> dict[str, Any]:
    return {
        "name": f"{height}p",
        "video": {"height": height, "fps": 30, "bitrateKbps": KBPS.get(height, 300)},
        "audio": {"bitrateKbps": 128},
    }


def manifest(height: int, destinations: int) -> dict[str, Any]:
    """LiveStream "bench" with one rendition that ``destinations`` destinations use."""
    return {
        "apiVersion": "restream.dev/v1alpha1",
        "kind": "LiveStream",
        "metadata": {"name": "bench", "namespace": "demo", "uid": "u"},
        "spec": {
            "renditions": [rendition(height)],
            "restreams": [
                {
                    "name": f"d{i}",
                    "serverUrl": f"rtmp://live.example.com/d{i}",
                    "streamKey": "x",
                    "rendition": f"{height}p",
                }
                for i in range(destinations)
            ],
        },
    }


def encode_clip(root: Path, size: str, seconds: int) -> Path:
    clip = root / "clip.flv"
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error",
         "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=30",
         "-f", "lavfi", "-i", "anoisesrc=sample_rate=48000:amplitude=0.2",
         "-t", str(seconds), "-c:v", "libx264", "-preset", "veryfast",
         "-g", "60", "-keyint_min", "60", "-b:v", "6000k", "-maxrate", "6000k",
         "-bufsize", "6000k", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k",
         "-f", "flv", "-y", str(clip)],
        check=True, timeout=600,
    )  # fmt: skip
    return clip


def plain_transcode(source: str, codecs: list[str], dest: str) -> list[str]:
    """Plain ffmpeg: the encoder's own transcode options, nothing supervising it."""
    return ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-f", "live_flv",
            "-i", source, *codecs, "-flvflags", "no_duration_filesize",
            "-f", "flv", dest]  # fmt: skip


def tree(pid: int) -> list[int]:
    return [pid, *h.children(pid)]


def cpu_percent(pids: list[int], seconds: float) -> float:
    """% of one core the processes used over ``seconds`` (those alive at the start)."""
    t0, c0 = time.monotonic(), sum(cpu_seconds(p) for p in pids)
    time.sleep(seconds)
    return (sum(cpu_seconds(p) for p in pids) - c0) / (time.monotonic() - t0) * 100


@dataclass
class Plane:
    procs: h.Processes
    root: Path
    plan: h.Rendered
    ingest: h.Ingest
    token: str
    codecs: list[str]  # the rendition's transcode options, as its encoder runs them

    def source_url(self) -> str:
        return f"{self.ingest.publish_url()}/{contract.STREAM_NAME}?token={self.token}"

    def start_encoder(self) -> h.Relay:
        ((name, argv),) = self.plan.encoders.items()
        port = h.free_port()
        enc = h.Relay(name, port, h.encoder_command(argv, self.ingest, port),
                      {contract.ENV_PLAY_TOKEN: self.token})  # fmt: skip
        return h.start_relay(self.procs, enc)


@contextmanager
def plane(clip: Path, height: int, destinations: int) -> Iterator[Plane]:
    """An ingest rendered for ``manifest``, the clip published to it."""
    with h.workdir("bench-renditions-") as root:
        procs = h.Processes(root)
        try:
            plan = h.rendered(h.render(manifest(height, destinations), root))
            stream_key, token = f"sk-{secrets.token_hex(8)}", secrets.token_urlsafe(16)
            ingest = h.start_ingest(procs, plan, root, stream_key, token)
            publish(procs, clip, ingest.publish_url(), stream_key)
            h.wait_for(lambda: h.StatusLog().get(ingest.status_url)["publishing"], "publishing", 10)
            (argv,) = plan.encoders.values()
            profile = agent_cli.encoder_profile(agent_cli.parse_args(argv[1:]))
            yield Plane(procs, root, plan, ingest, token, transcode_args(profile))
        finally:
            procs.close()


def live(relays: list[h.Relay]) -> None:
    status = h.StatusLog()
    h.wait_for(lambda: all(status.state(r) == "Live" for r in relays), "agents Live", 30)


def encoder_against_plain(clip: Path, height: int, args: argparse.Namespace) -> str:
    with plane(clip, height, 1) as p:
        encoder = p.start_encoder()
        # Plain ffmpeg publishes the same transcode back to the same ingest, as a
        # rendition of another name (the ingest takes one publisher per rendition).
        key = contract.rendition_publish_key(p.token, "plain")
        dest = f"{p.ingest.publish_url()}/{key}"
        plain = p.procs.start("plain", plain_transcode(p.source_url(), p.codecs, dest))
        live([encoder])
        time.sleep(args.settle)
        assert encoder.proc is not None
        ours, theirs = [], []
        for _ in range(args.windows):
            pids = tree(encoder.proc.pid)
            assert len(pids) == 2, "agent + ffmpeg"
            # Both measured over the same window: whatever else the machine does falls
            # on both.
            t0 = time.monotonic()
            c0 = sum(cpu_seconds(x) for x in pids), cpu_seconds(plain.pid)
            time.sleep(args.seconds)
            dt = time.monotonic() - t0
            ours.append((sum(cpu_seconds(x) for x in pids) - c0[0]) / dt * 100)
            theirs.append((cpu_seconds(plain.pid) - c0[1]) / dt * 100)
        live([encoder])
        assert plain.alive()
    a, b = statistics.median(ours), statistics.median(theirs)
    ratio = f"{a / b:.3f}x" if b else "n/a"
    each = " ".join(f"{x / y:.3f}" for x, y in zip(ours, theirs, strict=True) if y)
    return (
        f"rendition {height}p30 {KBPS.get(height, 300)} kbit/s: encoder agent + ffmpeg "
        f"{a:.1f}% | plain ffmpeg {b:.1f}% | ratio {ratio} (windows: {each}) = {a / 100:.2f} cores"
    )


def sharing(clip: Path, args: argparse.Namespace) -> str:
    n, height = args.destinations, args.share_height
    with plane(clip, height, n) as p:
        sink_port = h.free_port()
        start_nginx(p.procs, p.root / "sink", sink_port,
                    "        application shared { live on; }\n"
                    "        application separate { live on; }")  # fmt: skip
        encoder = p.start_encoder()
        relays = []
        for i in range(n):
            port = h.free_port()
            argv = h.relay_command(p.plan.relays[f"d{i}"], p.ingest,
                                   f"rtmp://127.0.0.1:{sink_port}/shared", port)  # fmt: skip
            env = {contract.ENV_DESTINATION_KEY: f"k{i}", contract.ENV_PLAY_TOKEN: p.token}
            relays.append(h.start_relay(p.procs, h.Relay(f"d{i}", port, argv, env)))
        live([encoder, *relays])
        time.sleep(args.settle)
        pids = [x for a in (encoder, *relays) if a.proc for x in tree(a.proc.pid)]
        assert len(pids) == 2 * (n + 1), "each agent + its ffmpeg"
        shared = statistics.median(cpu_percent(pids, args.seconds) for _ in range(args.windows))
        live([encoder, *relays])
        for agent in (encoder, *relays):
            assert agent.proc is not None
            agent.proc.stop()
        separate_procs = [
            p.procs.start(f"separate-{i}", plain_transcode(
                p.source_url(), p.codecs, f"rtmp://127.0.0.1:{sink_port}/separate/s{i}"))
            for i in range(n)
        ]  # fmt: skip
        time.sleep(2 + args.settle)  # connect, analyse, encode: as the relays had
        assert all(x.alive() for x in separate_procs)
        pids = [x.pid for x in separate_procs]
        separate = statistics.median(cpu_percent(pids, args.seconds) for _ in range(args.windows))
    ratio = f"{shared / separate:.2f}x" if separate else "n/a"
    return (
        f"sharing {height}p30 among {n} destinations: 1 encoder + {n} copy relays "
        f"{shared:.1f}% | {n} separate transcodes {separate:.1f}% | ratio {ratio}, "
        f"saved {(separate - shared) / 100:.2f} cores"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="one measuring window")
    parser.add_argument("--windows", type=int, default=3, help="windows (medians over them)")
    parser.add_argument("--heights", default="720,1080", help="renditions to compare")
    parser.add_argument("--destinations", type=int, default=3, help="N, for the sharing figure")
    parser.add_argument("--share-height", type=int, default=480, help="the shared rendition")
    parser.add_argument("--source", default="1920x1080", help="the source's size")
    parser.add_argument("--clip-seconds", type=int, default=20, help="the clip, looped")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds before measuring")
    args = parse_args(parser, SMOKE)
    started = time.monotonic()
    with h.workdir("bench-clip-") as root:
        clip = encode_clip(root, args.source, args.clip_seconds)
        print(
            f"source {args.source} 30 fps H.264 6 Mbit/s + AAC 128 kbit/s, a keyframe every "
            f"2 s; renditions preset veryfast, keyframes every 2 s; {os.cpu_count()} CPUs; "
            f"{args.windows} windows of {args.seconds:g} s; CPU in % of one core (medians)"
        )
        for height in (int(x) for x in args.heights.split(",")):
            print(encoder_against_plain(clip, height, args), flush=True)
        print(sharing(clip, args), flush=True)
    print(f"\nbench wall time {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
