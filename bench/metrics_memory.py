"""What prometheus_client costs a relay agent in memory (not a test; prints figures).

Side by side in one run, on 127.0.0.1: one ingest, one encoder, and two relay agents of
the same LiveStream relaying live to a sink, each with its ffmpeg; one runs this tree's
agent (its /metrics from prometheus_client), the other the agent of another git revision
(``--before``, default BEFORE: the last one with the hand-written exposition), exported
with ``git archive`` and put first on its PYTHONPATH. Both are scraped (``/metrics``) every
second, as Prometheus would; then each agent process's RSS, PSS and USS (ffmpeg not
included) is read several times and the medians printed, with the difference.

    .venv/bin/python -m bench.metrics_memory [--before REV] [--seconds 20]
    .venv/bin/python -m bench.metrics_memory --smoke
"""

from __future__ import annotations

import argparse
import contextlib
import secrets
import statistics
import subprocess
import tarfile
import time
import urllib.request
from pathlib import Path

from bench.common import CHECKOUT, parse_args
from hack.localcluster.controlplane import free_port
from hack.media import harness as h
from restream_operator.agent import contract

# The last revision whose agents wrote their exposition by hand (no prometheus_client).
BEFORE = "e663c25"


def export(revision: str, dest: Path) -> Path:
    """``operator/`` as it is at ``revision``, under ``dest``."""
    dest.mkdir(parents=True)
    archive = dest / "tree.tar"
    subprocess.run(
        ["git", "archive", "--format=tar", "-o", str(archive), revision, "operator"],
        cwd=CHECKOUT,
        check=True,
    )
    with tarfile.open(archive) as tar:
        tar.extractall(dest, filter="data")
    return dest / "operator"


def memory_kib(pid: int) -> dict[str, int]:
    fields = {"Rss": "RSS", "Pss": "PSS", "Private_Clean": "USS", "Private_Dirty": "USS"}
    out = {"RSS": 0, "PSS": 0, "USS": 0}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in fields:
            out[fields[key]] += int(rest.split()[0])
    return out


def scrape(port: int) -> int:
    url = f"http://127.0.0.1:{port}{contract.PATH_METRICS}"
    with urllib.request.urlopen(url, timeout=5) as r:
        return len(r.read())


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--before", default=BEFORE, help="git revision of the other agent")
    parser.add_argument("--seconds", type=float, default=20.0, help="live and scraped")
    parser.add_argument("--samples", type=int, default=5)
    args = parse_args(parser, {"seconds": 3.0, "samples": 2})

    with h.workdir("restream-bench-metrics-") as root:
        before_tree = export(args.before, root / "before")
        procs = h.Processes(root)
        try:
            apps = ("before", "after")
            sink = h.RtmpSink(root / "sink", free_port(), apps)
            keys = {app: f"k-{secrets.token_hex(6)}" for app in apps}
            doc = {
                "apiVersion": "restream.dev/v1alpha1",
                "kind": "LiveStream",
                "metadata": {"name": "bench"},
                "spec": {
                    "restreams": [
                        {
                            "name": app,
                            "serverUrl": f"rtmp://127.0.0.1:{sink.port}/{app}",
                            "streamKey": keys[app],
                        }
                        for app in apps
                    ]
                },
            }
            plane = h.rendered(h.render(doc, root))
            sink.start(procs)
            stream_key, token = secrets.token_hex(8), secrets.token_hex(8)
            ingest = h.start_ingest(procs, plane, root, stream_key, token)
            relays: dict[str, h.Relay] = {}
            for app in apps:
                argv = plane.relays[app]
                port = free_port()
                env = {contract.ENV_DESTINATION_KEY: keys[app], contract.ENV_PLAY_TOKEN: token}
                if app == "before":
                    env["PYTHONPATH"] = str(before_tree)
                command = h.relay_command(argv, ingest, h.flag(argv, "--destination"), port)
                relays[app] = h.start_relay(procs, h.Relay(app, port, command, env))
            h.start_publisher(procs, ingest, stream_key)

            status = h.StatusLog()

            def live() -> bool:
                return all(status.get(r.status_url).get("state") == "Live" for r in relays.values())

            h.wait_for(live, "both relays Live", 30)
            sizes = {app: 0 for app in apps}
            deadline = time.monotonic() + args.seconds
            while time.monotonic() < deadline:
                for app, r in relays.items():
                    sizes[app] = scrape(r.agent_port)
                time.sleep(1.0)
            samples: dict[str, list[dict[str, int]]] = {app: [] for app in apps}
            for _ in range(args.samples):
                for app, r in relays.items():
                    assert r.proc is not None
                    scrape(r.agent_port)
                    samples[app].append(memory_kib(r.proc.pid))
                time.sleep(1.0)
        finally:
            procs.close()

    med = {
        app: {
            k: statistics.median(s[k] for s in samples[app]) / 1024 for k in ("RSS", "PSS", "USS")
        }
        for app in apps
    }
    print(f"relay agent process alone (ffmpeg not included), live, scraped every second; "
          f"median of {args.samples} samples")  # fmt: skip
    print(f"{'agent':<34} {'RSS MiB':>8} {'PSS MiB':>8} {'USS MiB':>8} {'/metrics bytes':>15}")
    names = {
        "before": f"{args.before} (hand-written exposition)",
        "after": "this tree",
    }
    for app in apps:
        m = med[app]
        print(f"{names[app]:<34} {m['RSS']:8.1f} {m['PSS']:8.1f} {m['USS']:8.1f} {sizes[app]:15d}")
    d = {k: med["after"][k] - med["before"][k] for k in ("RSS", "PSS", "USS")}
    print(f"metrics_library_cost_mib RSS {d['RSS']:+.1f} PSS {d['PSS']:+.1f} USS {d['USS']:+.1f}")


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
