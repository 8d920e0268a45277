"""Frozen-destination benchmark on 127.0.0.1 (not a test; prints figures).

A destination's server frozen with SIGSTOP for 10 s while a publisher streams, for rtmp://,
rtmps:// and srt:// destinations at 300 kbit/s and 3 Mbit/s of video (plus 64 kbit/s of
audio), with hack/media/freeze.py's plane (the relays as the operator renders them).
Median over the runs (and every run's value) of:

* SIGSTOP -> the relay leaves Live;
* the longest a reconnect attempt to the still-frozen destination stayed Connecting;
* SIGCONT -> Live again;
* the stale tail: how far the timestamps of what the frozen session received after the
  thaw ran ahead of the wall clock (what the destination's kernel had accepted, plus our
  send buffer), and the same for the sessions after it (a burst there would be ours);
* the longest any sibling destination's recording did not grow.

    .venv/bin/python -m bench.freeze [--runs 3] [--bitrates 300k,3000k] [--kinds rtmp,rtmps,srt]
    .venv/bin/python -m bench.freeze --smoke     # one run of rtmp at 300k: that it runs
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from bench.common import parse_args
from hack.media import freeze
from hack.media.freeze import Round

SMOKE = {"runs": 1, "bitrates": "300k", "kinds": "rtmp"}
FIGURES: list[tuple[str, Callable[[Round], float | None]]] = [
    ("left Live after SIGSTOP", lambda r: r.left_live),
    ("longest Connecting while frozen", lambda r: max(r.connecting, default=None)),
    ("Live again after SIGCONT", lambda r: r.live_again),
    ("stale tail of the frozen session", lambda r: r.stale),
    ("burst in the sessions after it", lambda r: r.fresh_ahead),
    ("longest sibling stall", lambda r: max(r.sibling_stall.values())),
]


def line(label: str, values: list[float | None]) -> str:
    known = [v for v in values if v is not None]
    median = f"{statistics.median(known):5.2f} s" if known else "    n/a"
    each = " ".join("n/a" if v is None else f"{v:.2f}" for v in values)
    return f"  {label:<34} median {median}  ({each})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--bitrates", default="300k,3000k")
    parser.add_argument("--kinds", default=",".join(freeze.KINDS))
    args = parse_args(parser, SMOKE)
    kinds = args.kinds.split(",")
    started = time.monotonic()
    rounds: dict[tuple[str, str], list[Round]] = {}
    with freeze.plane() as p:
        for _ in range(args.runs):
            for bitrate in args.bitrates.split(","):
                with freeze.broadcasting(p, bitrate):
                    for kind in kinds:
                        rounds.setdefault((bitrate, kind), []).append(freeze.freeze_round(p, kind))
        print(f"max reconnect delay {p.max_delay:g} s; {args.runs} run(s) each")
    for (bitrate, kind), runs in rounds.items():
        print(f"{kind} destination, {bitrate}bit/s video:")
        for label, figure in FIGURES:
            print(line(label, [figure(r) for r in runs]))
        print(f"  siblings Live throughout            {all(r.siblings_live for r in runs)}")
    print(f"bench wall time {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
