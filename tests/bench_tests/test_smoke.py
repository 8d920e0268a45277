"""Every benchmark in its smoke mode, so that none can rot unnoticed.

`python -m bench.X --smoke` runs the benchmark's own code on tiny counts for seconds,
with the same real processes as a full run (a real control plane and operator, real
nginx-rtmp and ffmpeg). Only that it completes and prints each of its figures, with a
number, is checked: the values of so short a run mean nothing. Full runs are manual
(README, "Benchmarks").
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

CHECKOUT = Path(__file__).resolve().parents[2]
NUM = r"\d+(?:\.\d+)?"


def smoke(bench: str, figures: list[str], timeout: float = 120) -> None:
    """Runs ``bench.<bench> --smoke``; each figure pattern must match a line of its output."""
    run = subprocess.run(
        [sys.executable, "-m", f"bench.{bench}", "--smoke"],
        cwd=CHECKOUT, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip
    out = run.stdout
    print(out)
    assert run.returncode == 0, out + run.stderr[-3000:]
    missing = [f for f in figures if not re.search(f, out, re.MULTILINE)]
    assert missing == [], out


@pytest.mark.cluster
def test_admission_bench_prints_its_latencies() -> None:
    latencies = rf"n=\s*[1-9]\d*\s+{NUM}/s\s+p50\s+{NUM} ms\s+p99\s+{NUM} ms$"
    smoke(
        "admission",
        [
            *(
                rf"^webhook direct, {load}, {how}\s+{latencies}"
                for load in ("one at a time", "4 concurrent")
                for how in ("no access review", "access review cached", "access review each")
            ),
            rf"^apiserver dry-run create, 4 concurrent\s+{latencies}",
            rf"^kubectl apply --dry-run=server, sequential\s+{latencies}",
        ],
    )


@pytest.mark.cluster
def test_reconcile_bench_prints_convergence_memory_and_idle_writes() -> None:
    smoke(
        "reconcile",
        [
            r"^livestreams x destinations\s+3 x 2$",
            r"^objects per LiveStream\s+[1-9]\d* \(itself included\)$",
            rf"^direct: all written after\s+{NUM} s \(2 kubectl processes\)$",
            rf"^direct: all available after\s+{NUM} s$",
            r"^direct: API requests\s+[1-9]\d* \((?:[A-Z]+ \d+(?:, )?)+\)$",
            r"^direct: control plane CPU\s+\d+ s \((?:[a-z-]+ \d+(?:, )?)+\)$",
            r"^direct: kubectl CPU \(children\)\s+\d+ s$",
            rf"^operator: kubectl apply took\s+{NUM} s$",
            rf"^operator: all Ready after\s+{NUM} s$",
            rf"^ratio operator/direct\s+{NUM}x$",
            r"^operator: API requests\s+[1-9]\d* \((?:[A-Z]+ \d+(?:, )?)+\)$",
            r"^operator: most more than direct\s+(?:none|(?:[A-Z]+ [a-z/]+ \+\d+(?:, )?)+)$",
            r"^operator: control plane CPU\s+\d+ s \((?:[a-z-]+ \d+(?:, )?)+\)$",
            rf"^operator CPU while converging\s+{NUM} s$",
            r"^operator: kubectl CPU\s+\d+ s \(the LiveStreams' apply\)$",
            r"^operator peak RSS \(converged\)\s+[1-9]\d* MiB$",
            r"^operator peak RSS \(after idle\)\s+[1-9]\d* MiB$",
            rf"^operator CPU while idle\s+{NUM} s per minute$",
            rf"^agent polls while idle\s+{NUM} per second: ingest {NUM}, relay {NUM} "
            rf"\(unanswered: ingest {NUM}, relay {NUM}\); {NUM} were all 9 agents to "
            rf"answer \(every {NUM} s\)$",
            rf"^restart: every one resumed\s+{NUM} s$",
            r"^restart: API writes\s+\d+ \(.+\)$",
            r"^restart: objects changed\s+\d+ of [1-9]\d*",
            rf"^bench wall time {NUM} s$",
            rf"^status writes while idle\s+{NUM} per minute$",
        ],
    )


@pytest.mark.media
def test_relay_bench_prints_resources_latencies_and_first_byte() -> None:
    cpu_mem = rf"{NUM}%(?:\s+{NUM}){{3}}"
    smoke(
        "relay",
        [
            # one destination: relay agent + ffmpeg, plain ffmpeg, nginx push, the agent
            # alone, and the two CPU ratios (n/a when a process used under one clock tick:
            # in seconds, nginx push does)
            rf"^\s+1 \|\s+{cpu_mem} \|\s+{cpu_mem} \|\s+{NUM}% \|(?:\s+{NUM}){{3}} \|"
            rf"\s+(?:{NUM}x|n/a)\s+(?:{NUM}x|n/a)$",
            *(
                rf"^\s+{hop}\s+all\s+{NUM} ms \(n=[1-9]\d*\)\s+video\s+{NUM} ms \(n=[1-9]\d*\)"
                rf"\s+audio\s+{NUM} ms \(n=[1-9]\d*\)$"
                for hop in ("relay agent", "plain ffmpeg", "nginx push")
            ),
            rf"first media at the destination: median {NUM} s \({NUM}\)$",
            rf"^bench wall time {NUM} s$",
        ],
    )


@pytest.mark.media
def test_tracks_bench_prints_first_media_and_restart_gaps() -> None:
    smoke(
        "tracks",
        [
            *(
                # Negative within the polling resolution: both seen in one 5 ms poll.
                rf"^first media after the publish \({encoder}, 4 s GOP, B-frames\): "
                rf"median -?{NUM} s \(-?{NUM}(?:, -?{NUM})*\)$"
                for encoder in ("ffmpeg", "GStreamer")
            ),
            *(
                rf"^media again after a relay restart \({gop} s GOP\): median {NUM} s \({NUM}\)$"
                for gop in (2, 4)
            ),
            rf"^bench wall time {NUM} s$",
        ],
        timeout=180,
    )


@pytest.mark.media
def test_probe_bench_prints_the_agent_cpu_with_and_without_the_probe() -> None:
    smoke(
        "probe",
        [
            rf"^ingest agent with the probe\s+{NUM}%\s+nginx worker {NUM}%$",
            rf"^ingest agent without the probe\s+{NUM}%\s+nginx worker {NUM}%$",
            rf"^the probe's cost\s+-?{NUM}% in the agent, [+-]{NUM}% in nginx$",
            rf"^bench wall time {NUM} s$",
        ],
    )


@pytest.mark.media
def test_freeze_bench_prints_detection_recovery_and_bursts() -> None:
    figure = rf"median\s+{NUM} s\s+\({NUM}\)$"
    smoke(
        "freeze",
        [
            r"^rtmp destination, 300kbit/s video:$",
            *(
                rf"^\s+{label}\s+{figure}"
                for label in (
                    "left Live after SIGSTOP",
                    "longest Connecting while frozen",
                    "Live again after SIGCONT",
                    "stale tail of the frozen session",
                    "burst in the sessions after it",
                    "longest sibling stall",
                )
            ),
            r"^\s+siblings Live throughout\s+True$",
            rf"^bench wall time {NUM} s$",
        ],
        timeout=240,
    )


@pytest.mark.cluster
def test_console_bench_prints_weight_render_time_and_tab_memory() -> None:
    smoke(
        "console",
        [
            r"^livestreams in the overview\s+5$",
            rf"^page weight\s+{NUM} KiB \(page, script, style, icon\)$",
            rf"^snapshot\s+{NUM} KiB \(the event stream's first listing\)$",
            rf"^a LiveStream's page weight\s+{NUM} KiB \(no preview playing\)$",
            rf"^first render\s+median {NUM} s \({NUM}\)$",
            rf"^live change shown after\s+median {NUM} ms \({NUM}\)$",
            rf"^tab JS heap in use\s+{NUM} MiB$",
            r"^tab DOM nodes\s+[1-9]\d*$",
            rf"^bench wall time {NUM} s$",
        ],
    )


@pytest.mark.media
def test_metrics_memory_bench_prints_both_agents_and_the_cost() -> None:
    mib = rf"\s+{NUM}\s+{NUM}\s+{NUM}\s+[1-9]\d*$"
    smoke(
        "metrics_memory",
        [
            rf"^\w+ \(hand-written exposition\){mib}",
            rf"^this tree{mib}",
            rf"^metrics_library_cost_mib RSS [+-]{NUM} PSS [+-]{NUM} USS [+-]{NUM}$",
        ],
    )


@pytest.mark.media
def test_renditions_bench_prints_encoder_ratio_and_sharing() -> None:
    smoke(
        "renditions",
        [
            rf"^rendition 96p30 300 kbit/s: encoder agent \+ ffmpeg {NUM}% \| plain ffmpeg "
            rf"{NUM}% \| ratio (?:{NUM}x|n/a) \(windows: [\d. ]*\) = {NUM} cores$",
            rf"^sharing 96p30 among 2 destinations: 1 encoder \+ 2 copy relays {NUM}% \| "
            rf"2 separate transcodes {NUM}% \| ratio (?:{NUM}x|n/a), saved -?{NUM} cores$",
            rf"^bench wall time {NUM} s$",
        ],
    )
