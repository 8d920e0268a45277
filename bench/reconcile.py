"""Reconcile benchmark against the local control plane (not a test; prints figures).

The same objects written two ways, side by side in one cluster (kwok's node takes every
pod, so both can finish):

* direct, the control plane's own limit on this machine: N LiveStreams applied into a
  fresh namespace, then the children `restream-operator render` makes of them, applied
  with `kubectl apply --server-side` in --parallel processes, no operator running. Timed
  until every Deployment is available (the controller-manager and kwok make its pods
  Ready), as the operator's time is. The namespace is then deleted, and gone, before:
* operator: the same N LiveStreams applied into another namespace with the operator
  running, until every one has all its children and says Ready. Its CPU seconds and peak
  RSS while converging; then, with nothing changing, its CPU per minute (agent polling
  included), the agent polls it made (its /metrics: kwok's pods have no agent, so each
  is refused and relays back off; the line also says the rate were all to answer) and
  the status writes per minute; then an operator restart: the writes it
  made (the API server's request counters, and every object's resourceVersion) and how
  long until every LiveStream was resumed.

The CPU of the kubectl processes each leg runs is printed too: the machine's cores are
shared, so the time of either leg is about all the CPU it costs over the cores.

Both legs learn that they are done from watches (Deployments; LiveStreams too in the
operator's), never from LISTs, so that waiting loads neither leg more than the other.

    .venv/bin/python -m bench.reconcile [--count 200] [--destinations 3] [--parallel 8]
    .venv/bin/python -m bench.reconcile --smoke     # seconds: that it runs (make test)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import resource
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import config

from bench.common import cluster_with_crds, parse_args
from hack.localcluster.census import api_requests, api_writes, resource_versions
from hack.localcluster.controlplane import LocalCluster, free_port
from hack.localcluster.livestreams import many
from hack.localcluster.operator_process import OperatorProcess
from restream_operator import models
from restream_operator.kube import Kube
from restream_operator.watches import Watch

SMOKE = {"count": 3, "destinations": 2, "idle": 3.0, "settle": 2.0, "poll": 0.5, "parallel": 2}
OPERATOR_NS, DIRECT_NS = "bench", "direct"
PREFIX = "bench"  # LiveStreams bench-0000...
LIMIT = 1800.0  # seconds any phase may take before the benchmark gives up


def is_ready(obj: dict[str, Any]) -> bool:
    """A LiveStream whose status says Ready=True (children exist, pods ready)."""
    conditions = (obj.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def is_available(obj: dict[str, Any]) -> bool:
    return bool((obj.get("status") or {}).get("availableReplicas"))


class Tally:
    """How many objects of a kind in a namespace pass a test, kept from a watch (the
    operator's own watches.Watch, in a thread with its own event loop). Waiting costs
    the API server only the events, the same in both legs; a LIST of every LiveStream
    every poll (1,000 of them, and 4,000 Deployments once they were Ready) cost the API
    server and kubectl more than the operator's own status writes, in its leg only."""

    def __init__(
        self,
        cluster: LocalCluster,
        kind: str,
        namespace: str,
        passes: Callable[[dict[str, Any]], bool],
    ) -> None:
        self.passes = passes
        self.passing: set[str] = set()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.kube = Kube(config.new_client_from_config(config_file=str(cluster.kubeconfig)))  # type: ignore[no-untyped-call]
        self.watch = Watch(self.kube, kind, namespace, {}, self._on_event, self.loop)

    def _on_event(self, type_: str, obj: dict[str, Any]) -> None:
        name = obj["metadata"]["name"]
        if type_ != "DELETED" and self.passes(obj):
            self.passing.add(name)
        else:
            self.passing.discard(name)

    def __len__(self) -> int:
        return len(self.passing)

    def __enter__(self) -> Tally:
        self.thread.start()
        self.watch.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.watch.stop()
        self.watch.join(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()
        self.kube.api.close()  # type: ignore[no-untyped-call]


def wait(what: str, done: Callable[[], bool], poll: float) -> None:
    started = time.monotonic()
    while not done():
        if time.monotonic() - started > LIMIT:
            raise SystemExit(f"gave up after {LIMIT:.0f} s waiting for {what}")
        time.sleep(poll)


def apply_parallel(cluster: LocalCluster, documents: list[str], parallel: int) -> None:
    """`kubectl apply --server-side` of the documents, split over `parallel` processes."""
    chunks = [documents[i::parallel] for i in range(parallel)]
    procs = [
        subprocess.Popen(
            [
                str(cluster.kubectl_path),
                f"--kubeconfig={cluster.kubeconfig}",
                "apply",
                "--server-side",
                "-f",
                "-",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for chunk in chunks
        if chunk
    ]
    for proc, chunk in zip(procs, chunks, strict=False):
        assert proc.stdin is not None
        proc.stdin.write("\n---\n".join(chunk))
        proc.stdin.close()
    for proc in procs:
        assert proc.stderr is not None
        err = proc.stderr.read()
        if proc.wait(timeout=LIMIT) != 0:
            raise SystemExit(f"kubectl apply failed: {err[-2000:]}")


def rendered_children(cluster: LocalCluster, namespace: str, tmp: Path) -> list[str]:
    """What the operator would apply for the LiveStreams now in `namespace` (their uids
    included, so owner references and garbage collection are as the operator's)."""
    listing = cluster.kubectl("get", "livestreams", "-n", namespace, "-o", "json", timeout=300)
    source = tmp / "livestreams.json"
    source.write_text(listing.stdout)
    out = subprocess.run(
        [sys.executable, "-m", "restream_operator.cli", "render", "-f", str(source)],
        capture_output=True,
        text=True,
        check=True,
        timeout=LIMIT,
    ).stdout
    return [doc for doc in re.split(r"^---$", out, flags=re.MULTILINE) if doc.strip()]


def direct(cluster: LocalCluster, args: argparse.Namespace, tmp: Path, f: Figures) -> None:
    """Seconds until every object is written, until every Deployment is available, and
    the API requests that took."""
    cluster.kubectl("create", "namespace", DIRECT_NS)
    requests, cpu = api_requests(cluster), control_plane_cpu(cluster)
    started = time.monotonic()
    with Tally(cluster, "Deployment", DIRECT_NS, is_available) as available:
        apply_parallel(
            cluster, many(args.count, args.destinations, DIRECT_NS, PREFIX).split("\n---\n"), 1
        )
        rendering = time.monotonic()
        children = rendered_children(cluster, DIRECT_NS, tmp)
        started += time.monotonic() - rendering  # rendering is not the control plane's work
        kubectl_cpu = children_cpu()
        apply_parallel(cluster, children, args.parallel)
        f.direct_kubectl = children_cpu() - kubectl_cpu
        written = time.monotonic() - started
        expected = args.count * (1 + args.destinations)
        wait("the direct Deployments", lambda: len(available) >= expected, args.poll)
    f.written, f.direct = written, time.monotonic() - started
    f.direct_requests = api_requests(cluster) - requests
    f.direct_cpu = control_plane_cpu(cluster, since=cpu)
    cluster.kubectl("delete", "namespace", DIRECT_NS, "--wait=true", timeout=LIMIT)


def children_cpu() -> float:
    """CPU seconds of this process's children waited for so far (the kubectl processes)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class Process:
    """CPU and memory of a process, from /proc."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.tick = os.sysconf("SC_CLK_TCK")

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / self.tick  # utime + stime

    def peak_rss_mib(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")


def control_plane_cpu(
    cluster: LocalCluster, since: dict[str, float] | None = None
) -> dict[str, float]:
    """CPU seconds so far of each control-plane process (API server, etcd, controller
    manager, scheduler, kwok): where each leg's time went, since all share the cores.
    ``since``: an earlier answer, to subtract."""
    out: dict[str, float] = {}
    for component in cluster.components:
        if component.pid is not None:
            with contextlib.suppress(OSError):
                cpu = Process(component.pid).cpu_seconds()
                out[component.name] = cpu - (since or {}).get(component.name, 0.0)
    return out


def resumed(log: Path, offset: int) -> int:
    with log.open("rb") as f:
        f.seek(offset)
        return f.read().count(b": resume: reconciled generation")


@dataclass
class Figures:
    written: float = 0.0  # direct
    direct: float = 0.0
    applied: float = 0.0  # operator
    converged: float = 0.0
    cpu_converged: float = 0.0
    rss: float = 0.0
    peak: float = 0.0
    idle_cpu: float = 0.0
    idle_polls: Counter[str] = field(default_factory=Counter)  # by agent, and failed
    status_writes: int = 0
    caught_up: float = 0.0
    restart_writes: Counter[str] = field(default_factory=Counter)
    direct_requests: Counter[str] = field(default_factory=Counter)
    direct_cpu: dict[str, float] = field(default_factory=dict)
    direct_kubectl: float = 0.0  # CPU seconds of the kubectl processes applying children
    operator_kubectl: float = 0.0  # of the kubectl applying the LiveStreams
    operator_cpu: dict[str, float] = field(default_factory=dict)
    operator_requests: Counter[str] = field(default_factory=Counter)
    changed: list[str] = field(default_factory=list)
    census: dict[str, str] = field(default_factory=dict)


def with_operator(cluster: LocalCluster, args: argparse.Namespace, tmp: Path, f: Figures) -> None:
    log = tmp / "operator.log"
    env = {"RESTREAM_AGENT_POLL_SECONDS": f"{args.agent_poll:g}"}
    op = OperatorProcess(cluster.kubeconfig, log, env=env)
    scrape = f"127.0.0.1:{free_port()}"
    op.start("--metrics", scrape)
    try:
        assert op.process is not None
        proc = Process(op.process.pid)
        requests, cpu = api_requests(cluster), control_plane_cpu(cluster)
        with (
            Tally(cluster, models.KIND, OPERATOR_NS, is_ready) as ready,
            Tally(cluster, "Deployment", OPERATOR_NS, is_available) as available,
        ):
            started = time.monotonic()
            docs = many(args.count, args.destinations, OPERATOR_NS, PREFIX)
            kubectl_cpu = children_cpu()
            cluster.kubectl("apply", "--server-side", "-f", "-", input=docs, timeout=LIMIT)
            f.operator_kubectl = children_cpu() - kubectl_cpu
            f.applied = time.monotonic() - started
            expected = args.count * (1 + args.destinations)
            wait(
                "the operator's LiveStreams",
                lambda: len(ready) >= args.count and len(available) >= expected,
                args.poll,
            )
            f.converged = time.monotonic() - started
        f.operator_requests = api_requests(cluster) - requests
        f.operator_cpu = control_plane_cpu(cluster, since=cpu)
        f.cpu_converged, f.rss = proc.cpu_seconds(), proc.peak_rss_mib()

        # Settle, then count every write to any LiveStream while nothing changes.
        time.sleep(args.settle)
        watch = subprocess.Popen(
            [str(cluster.kubectl_path), f"--kubeconfig={cluster.kubeconfig}", "get",
             "livestreams", "-n", OPERATOR_NS, "--watch-only", "-o", "name"],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        cpu_before, polls_before = proc.cpu_seconds(), agent_polls(scrape)
        time.sleep(args.idle)
        f.idle_cpu = (proc.cpu_seconds() - cpu_before) * 60 / args.idle
        f.idle_polls = agent_polls(scrape) - polls_before
        watch.terminate()
        f.status_writes = len(watch.communicate(timeout=10)[0].split())
        f.peak = proc.peak_rss_mib()

        # A restart with nothing changed.
        op.stop()
        before, writes_before = resource_versions(cluster, OPERATOR_NS), api_writes(cluster)
        offset = log.stat().st_size
        op.start()
        restarted = time.monotonic()
        wait("every LiveStream resumed", lambda: resumed(log, offset) >= args.count, 0.2)
        f.caught_up = time.monotonic() - restarted
        time.sleep(args.settle)  # a status pass or two after the resume
        after, writes_after = resource_versions(cluster, OPERATOR_NS), api_writes(cluster)
    finally:
        op.stop()
    f.changed = sorted(k for k, v in after.items() if before.get(k) != v)
    f.restart_writes = writes_after - writes_before
    f.census = before


def report(args: argparse.Namespace, f: Figures) -> None:
    agents = args.count * (1 + args.destinations)
    polled = sum(n for k, n in f.idle_polls.items() if not k.startswith("failed"))
    writes = ", ".join(f"{k} {v}" for k, v in sorted(f.restart_writes.items())) or "none"
    example = f" (e.g. {', '.join(f.changed[:3])})" if f.changed else ""
    for label, value in (
        ("livestreams x destinations", f"{args.count} x {args.destinations}"),
        ("objects per LiveStream", f"{objects_of_one(f.census)} (itself included)"),
        ("direct: all written after", f"{f.written:.1f} s ({args.parallel} kubectl processes)"),
        ("direct: all available after", f"{f.direct:.1f} s"),
        ("direct: API requests", by_verb(f.direct_requests)),
        ("direct: control plane CPU", seconds_by_process(f.direct_cpu)),
        ("direct: kubectl CPU (children)", f"{f.direct_kubectl:.0f} s"),
        ("operator: kubectl apply took", f"{f.applied:.1f} s"),
        ("operator: all Ready after", f"{f.converged:.1f} s"),
        ("ratio operator/direct", f"{f.converged / f.direct:.2f}x"),
        ("operator: API requests", by_verb(f.operator_requests)),
        ("operator: most more than direct", extra(f.operator_requests, f.direct_requests)),
        ("operator: control plane CPU", seconds_by_process(f.operator_cpu)),
        ("operator CPU while converging", f"{f.cpu_converged:.1f} s"),
        ("operator: kubectl CPU", f"{f.operator_kubectl:.0f} s (the LiveStreams' apply)"),
        ("operator peak RSS (converged)", f"{f.rss:.0f} MiB"),
        ("operator peak RSS (after idle)", f"{f.peak:.0f} MiB"),
        ("operator CPU while idle", f"{f.idle_cpu:.1f} s per minute"),
        (
            "agent polls while idle",
            f"{polled / args.idle:.0f} per second: {per_second(f.idle_polls, '', args.idle)} "
            f"(unanswered: {per_second(f.idle_polls, 'failed ', args.idle)}); "
            f"{agents / args.agent_poll:.0f} were all {agents} agents to answer (every "
            f"{args.agent_poll:g} s)",
        ),
        ("status writes while idle", f"{f.status_writes * 60 / args.idle:.1f} per minute"),
        ("restart: every one resumed", f"{f.caught_up:.1f} s"),
        ("restart: API writes", f"{sum(f.restart_writes.values())} ({writes})"),
        ("restart: objects changed", f"{len(f.changed)} of {len(f.census)}{example}"),
    ):
        print(f"{label:<32}{value}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--destinations", type=int, default=3)
    parser.add_argument("--parallel", type=int, default=8, help="kubectl processes, direct")
    parser.add_argument("--idle", type=float, default=60, help="seconds counting idle writes")
    parser.add_argument("--settle", type=float, default=15, help="seconds before counting")
    parser.add_argument(
        "--poll", type=float, default=0.2, help="seconds between checks (of a watch)"
    )
    parser.add_argument("--agent-poll", type=float, default=5, help="the operator's setting")
    args = parse_args(parser, SMOKE)
    bench_started = time.monotonic()
    figures = Figures()
    with cluster_with_crds(OPERATOR_NS) as (cluster, tmp):
        direct(cluster, args, tmp, figures)
        with_operator(cluster, args, tmp, figures)
    report(args, figures)
    print(f"bench wall time {time.monotonic() - bench_started:.0f} s")
    return 0


def agent_polls(address: str) -> Counter[str]:
    """The operator's agent polls so far, from its /metrics: by agent, and those that
    got no answer ("failed <agent>")."""
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    out: Counter[str] = Counter()
    for name, prefix in (("agent_polls_total", ""), ("agent_poll_failures_total", "failed ")):
        for agent, value in re.findall(
            rf'^restream_operator_{name}{{agent="(\w+)"}} (\S+)$', text, re.MULTILINE
        ):
            out[prefix + agent] = int(float(value))
    return out


def per_second(counts: Counter[str], prefix: str, seconds: float) -> str:
    """ "ingest n, relay n": the counts of agent_polls whose key is prefix + agent."""
    return ", ".join(
        f"{agent} {counts[prefix + agent] / seconds:.0f}" for agent in ("ingest", "relay")
    )


def extra(operator: Counter[str], direct: Counter[str], top: int = 5) -> str:
    """The requests the operator made more of than the direct apply, by verb and
    resource: where its extra load on the API server comes from."""
    more = (operator - direct).most_common(top)
    return ", ".join(f"{what} +{n}" for what, n in more) or "none"


def seconds_by_process(cpu: dict[str, float]) -> str:
    ranked = sorted(cpu.items(), key=lambda kv: -kv[1])
    return f"{sum(cpu.values()):.0f} s (" + ", ".join(f"{k} {v:.0f}" for k, v in ranked) + ")"


def by_verb(requests: Counter[str]) -> str:
    """ "N (APPLY n, GET n, ...)": the requests to a LiveStream's kinds, by verb."""
    verbs: Counter[str] = Counter()
    for what, n in requests.items():
        verbs[what.split(" ", 1)[0]] += n
    return f"{sum(verbs.values())} ({', '.join(f'{v} {n}' for v, n in verbs.most_common())})"


def objects_of_one(census: dict[str, str]) -> int:
    """The first LiveStream's objects in the census: itself and its children."""
    names = [key.split("/", 1)[1] for key in census]
    first = f"{PREFIX}-0000"
    return sum(name == first or name.startswith(f"{first}-") for name in names)


if __name__ == "__main__":
    sys.exit(main())
