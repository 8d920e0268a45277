"""The operator's Prometheus metrics (prometheus_client), served on ``--metrics``.

Counters and histograms are updated where things happen (reconcile.py, statusloop.py,
webhook.py, agentpoll.py); the LiveStreams and restreams by state are counted at scrape
time from what the operator holds in memory (``Runtime``), never asked of the API server.
Labels are bounded: namespace, state, reason, verdict, cause, component; never a name
that holds a key or a URL. The README's "Metrics" section lists every series; a test
holds the two together and a real Prometheus scrapes them.
"""

from __future__ import annotations

import logging
from collections import Counter as Tally
from collections.abc import Iterable
from typing import Any

from aiohttp import web
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .models import RestreamState
from .runtime import Runtime

log = logging.getLogger("restream.metrics")

# The classic text format, which generate_latest writes and every Prometheus reads.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
DEFAULT_PORT = 8080  # the chart's `metrics` container port (8081: kopf's /healthz)

# No *_created series: a counter's start time is the process's (process_start_time_seconds).
disable_created_metrics()  # type: ignore[no-untyped-call]
REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)

# Why a reconcile ran: kopf's causes and the status loop's repair.
RECONCILE_CAUSES = ("create", "update", "resume", "repair")
# Why one failed: status.conditions' reasons (reconcile.py).
RECONCILE_ERRORS = ("InvalidSpec", "NameConflict", "ReconcileFailed")
VERDICTS = ("allowed", "denied", "error")
AGENTS = ("ingest", "relay")
LIVESTREAM_STATES = ("Live", "Idle", "NotReady", "Suspended")

RECONCILES = Counter(
    "restream_operator_reconciles_total",
    "Reconciles of a LiveStream's children, by cause",
    ["cause"],
    registry=REGISTRY,
)
RECONCILE_ERRORS_TOTAL = Counter(
    "restream_operator_reconcile_errors_total",
    "Reconciles that failed, by reason",
    ["reason"],
    registry=REGISTRY,
)
RECONCILE_DURATION = Histogram(
    "restream_operator_reconcile_duration_seconds",
    "How long a reconcile took (every cause, failed ones too)",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
    registry=REGISTRY,
)
STATUS_WRITES = Counter(
    "restream_operator_status_writes_total",
    "LiveStream status patches written (only on change)",
    registry=REGISTRY,
)
WEBHOOK_REVIEWS = Counter(
    "restream_operator_webhook_reviews_total",
    "Admission reviews of LiveStreams, by verdict",
    ["verdict"],
    registry=REGISTRY,
)
WEBHOOK_DURATION = Histogram(
    "restream_operator_webhook_review_duration_seconds",
    "How long an admission review took in the operator",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
    registry=REGISTRY,
)
AGENT_POLLS = Counter(
    "restream_operator_agent_polls_total",
    "Polls of an agent's /status, answered or not, by agent",
    ["agent"],
    registry=REGISTRY,
)
AGENT_POLL_FAILURES = Counter(
    "restream_operator_agent_poll_failures_total",
    "Polls of an agent's /status that got no answer, by agent",
    ["agent"],
    registry=REGISTRY,
)
# Every label value known up front: a series exists (at 0) before it first counts.
for _cause in RECONCILE_CAUSES:
    RECONCILES.labels(_cause)
for _reason in RECONCILE_ERRORS:
    RECONCILE_ERRORS_TOTAL.labels(_reason)
for _verdict in VERDICTS:
    WEBHOOK_REVIEWS.labels(_verdict)
for _agent in AGENTS:
    AGENT_POLLS.labels(_agent)
    AGENT_POLL_FAILURES.labels(_agent)


def cause_label(cause: str) -> str:
    return cause if cause in RECONCILE_CAUSES else "other"


def livestream_state(obj: dict[str, Any], status: dict[str, Any]) -> str:
    """Live (broadcasting), Suspended (spec.suspend), Idle (Ready, nothing published)
    or NotReady (its Ready condition is not True)."""
    if (obj.get("spec") or {}).get("suspend"):
        return "Suspended"
    if status.get("broadcasting"):
        return "Live"
    ready = next(
        (c.get("status") for c in status.get("conditions") or [] if c.get("type") == "Ready"),
        None,
    )
    return "Idle" if ready == "True" else "NotReady"


class RuntimeCollector(Collector):
    """The gauges counted from the operator's memory at each scrape."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def collect(self) -> Iterable[Metric]:
        runtime = self.runtime
        streams: Tally[tuple[str, str]] = Tally()
        restreams: Tally[tuple[str, str]] = Tally()
        namespaces: set[str] = set()
        for uid, obj in list(runtime.livestreams.items()):
            state = runtime.streams.get(uid)
            status = (state.written if state is not None else None) or obj.get("status") or {}
            namespace = obj["metadata"].get("namespace") or ""
            namespaces.add(namespace)
            streams[namespace, livestream_state(obj, status)] += 1
            for entry in status.get("restreams") or []:
                restreams[namespace, str(entry.get("state"))] += 1
        by_state = GaugeMetricFamily(
            "restream_operator_livestreams",
            "LiveStreams by state (Live, Idle, NotReady, Suspended), per namespace",
            labels=["namespace", "state"],
        )
        per_restream = GaugeMetricFamily(
            "restream_operator_restreams",
            "Restreams (destinations) by status.restreams[].state, per namespace",
            labels=["namespace", "state"],
        )
        for namespace in sorted(namespaces):
            for s in LIVESTREAM_STATES:
                by_state.add_metric([namespace, s], streams[namespace, s])
            for r in RestreamState:
                per_restream.add_metric([namespace, r.value], restreams[namespace, r.value])
        return [by_state, per_restream]


async def serve(runtime: Runtime, address: str) -> web.AppRunner:
    """Serves GET /metrics on ``address`` (HOST:PORT) until the runner is cleaned up."""
    host, _, port = address.rpartition(":")
    collector = RuntimeCollector(runtime)
    REGISTRY.register(collector)

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE})

    async def unregister(_: web.Application) -> None:
        REGISTRY.unregister(collector)

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.on_cleanup.append(unregister)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host.strip("[]") or "0.0.0.0", int(port)).start()  # noqa: S104
    log.info(f"metrics on http://{address}/metrics")
    return runner
