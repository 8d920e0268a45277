"""The ingest probe's cost (not a test; prints figures).

The ingest as the operator renders it (nginx-rtmp and its agent) receives 720p30 H.264
at 6 Mbit/s with AAC, published from a clip encoded beforehand (``-c copy``, so the
encoder costs nothing). The agent's CPU is measured twice, side by side in time: with the
probe playing the stream (a play token is set), and without (no token: nothing may
play, so the agent starts no probe). The difference is the probe's cost; nginx's worker
is measured too, since it sends the stream once more, to the probe.

    .venv/bin/python -m bench.probe [--seconds 30] [--kbps 6000]
    .venv/bin/python -m bench.probe --smoke     # seconds: that it runs (make test)
"""

from __future__ import annotations

import argparse
import os
import secrets
import time
from pathlib import Path

from bench.common import parse_args
from bench.relay import cpu_seconds, encode_clip, publish
from hack.media import harness as h

SMOKE = {"seconds": 2.0, "clip_seconds": 4, "settle": 1.0}


def measure(clip: Path, token: str, seconds: float, settle: float) -> tuple[float, float]:
    """(agent, nginx worker) CPU in % of one core over ``seconds`` of a broadcast."""
    with h.workdir("bench-probe-") as root:
        procs = h.Processes(root)
        try:
            plan = h.rendered(h.render(h.example(), root))
            key = f"sk-{secrets.token_hex(8)}"
            ingest = h.start_ingest(procs, plan, root, key, token)
            publish(procs, clip, ingest.publish_url(), key)
            status = h.StatusLog()

            def ready() -> bool:
                doc = status.get(ingest.status_url)
                if not token:
                    return bool(doc["publishing"])
                tracks = doc.get("tracks") or {}
                return all((tracks.get(k) or {}).get("arrived") for k in ("video", "audio"))

            h.wait_for(ready, "the broadcast (and the probe's findings)", 20)
            time.sleep(settle)
            assert ingest.proc is not None
            agent = ingest.proc.pid
            (master,) = h.children(agent)
            (worker,) = h.children(master)
            a0, n0, t0 = cpu_seconds(agent), cpu_seconds(worker), time.monotonic()
            time.sleep(seconds)
            a1, n1, t1 = cpu_seconds(agent), cpu_seconds(worker), time.monotonic()
            return 100 * (a1 - a0) / (t1 - t0), 100 * (n1 - n0) / (t1 - t0)
        finally:
            procs.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="CPU measuring window")
    parser.add_argument("--kbps", type=int, default=6000, help="the video bitrate")
    parser.add_argument("--clip-seconds", type=int, default=20, help="the clip, looped")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds before measuring")
    args = parse_args(parser, SMOKE)
    started = time.monotonic()
    with h.workdir("bench-probe-clip-") as root:
        clip = encode_clip(root, args.clip_seconds, args.kbps)
        print(
            f"720p30 H.264 {args.kbps / 1000:g} Mbit/s + AAC 128 kbit/s into the ingest; "
            f"{os.cpu_count()} CPUs; {args.seconds:g} s windows (% of one core)"
        )
        with_probe = measure(clip, secrets.token_hex(8), args.seconds, args.settle)
        without = measure(clip, "", args.seconds, args.settle)
    print(
        f"ingest agent with the probe     {with_probe[0]:.2f}%   nginx worker {with_probe[1]:.2f}%"
    )
    print(f"ingest agent without the probe  {without[0]:.2f}%   nginx worker {without[1]:.2f}%")
    print(
        f"the probe's cost                {with_probe[0] - without[0]:.2f}% in the agent, "
        f"{with_probe[1] - without[1]:+.2f}% in nginx"
    )
    print(f"\nbench wall time {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
