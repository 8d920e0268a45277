"""First media at the destinations, and after a relay restart (not a test; prints figures).

On 127.0.0.1, the product's ingest and two relays with recording nginx-rtmp sinks
(hack/media/plane.py). For each encoder (ffmpeg and GStreamer, x264 with B-frames and
lookahead): the seconds from the encoder's first packet at the ingest (nginx's stat page)
to each destination's first media, median over the runs and both destinations. The two are
polled together every 5 ms or so: a start that comes as a burst, as GStreamer's does, reads
as 0, or a few ms below it. Then, during a broadcast, one relay's ffmpeg is killed: the
seconds until that destination has media again (the relay's first reconnect delay, then the
encoder's next keyframe: nginx-rtmp keeps no GOP to start a late player from).

    .venv/bin/python -m bench.tracks [--runs 3]
    .venv/bin/python -m bench.tracks --smoke    # seconds: that it runs (make test)
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from bench.common import parse_args
from hack.media import harness as h
from hack.media.plane import RecordingPlane, first_media_delays, new_recordings, start_plane

FPS = 25


def _median(label: str, values: list[float]) -> None:
    shown = ", ".join(f"{v:.2f}" for v in values)
    print(f"{label}: median {statistics.median(values):.2f} s ({shown})")


def first_media(p: RecordingPlane, start: Callable[[], h.Proc], runs: int) -> list[float]:
    out: list[float] = []
    for _ in range(runs):
        delays, encoder = first_media_delays(p, start)
        out += delays.values()
        encoder.stop(signal.SIGINT)
        p.wait_all("Idle", 15)
    return out


def restart_gap(p: RecordingPlane, gop_s: float, runs: int) -> list[float]:
    name = next(iter(p.relays))
    relay = p.relays[name]
    out: list[float] = []
    for _ in range(runs):
        p.wait_all("Idle", 15)
        encoder = h.start_publisher(
            p.procs, p.ingest, p.stream_key, None, gop=round(gop_s * FPS), bframes=True
        )
        p.wait_all("Live", 15)
        time.sleep(1.5)  # well inside a GOP: the restart is not lucky to land on a keyframe
        before = p.recordings()
        assert relay.proc is not None
        (ffmpeg,) = h.children(relay.proc.pid)
        os.kill(ffmpeg, signal.SIGKILL)
        killed = time.monotonic()

        def again(before: dict[str, list[Path]] = before) -> bool:
            files = new_recordings(p, before)[name]
            return bool(files) and files[-1].stat().st_size > 8192

        h.wait_for(again, "media again at the destination", 30, 0.01)
        out.append(time.monotonic() - killed)
        encoder.stop(signal.SIGINT)
        p.wait_all("Idle", 15)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parse_args(parser, smoke={"runs": 1})
    started = time.monotonic()
    with h.workdir("restream-bench-tracks-") as root:
        procs = h.Processes(root)
        try:
            p = start_plane(procs, root)
            for encoder, start in (
                ("ffmpeg", lambda: h.start_publisher(
                    procs, p.ingest, p.stream_key, 8, gop=4 * FPS, bframes=True
                )),
                ("GStreamer", lambda: h.start_gstreamer(
                    procs, p.ingest, p.stream_key, 8 * FPS, gop=4 * FPS
                )),
            ):  # fmt: skip
                label = f"first media after the publish ({encoder}, 4 s GOP, B-frames)"
                _median(label, first_media(p, start, args.runs))
            for gop_s in (2.0, 4.0):
                label = f"media again after a relay restart ({gop_s:g} s GOP)"
                _median(label, restart_gap(p, gop_s, args.runs))
        finally:
            procs.close()
    print(f"bench wall time {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
