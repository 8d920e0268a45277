"""A real Prometheus (Debian's `prometheus`, on 127.0.0.1) scrapes the operator and the
real agents of a LiveStream (tests/media/world.py) while an encoder publishes: every
series the README lists is there with plausible values, and every PromQL expression of
the chart's Grafana dashboard returns data."""

from __future__ import annotations

import json
import re
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hack.localcluster.controlplane import LocalCluster, free_port
from hack.localcluster.operator_process import OperatorProcess, wait_for_webhooks
from hack.media import prometheus
from hack.media.harness import start_publisher, wait_for
from hack.media.prometheus import Prometheus, Target
from restream_operator import naming
from tests.metrics_readme import readme_metrics, sample_names
from tests.tools import install_hint, tools_required

from .world import NAME, World, livestream_status, served_by_real_agents

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.media,
    # Under `make test` and in CI a missing prometheus fails the test (tests/tools.py).
    pytest.mark.skipif(
        not prometheus.available() and not tools_required(),
        reason=f"no prometheus ({install_hint('metrics')})",
    ),
]

CHECKOUT = Path(__file__).resolve().parents[2]
DASHBOARD = CHECKOUT / "charts" / "restream-operator" / "files" / "dashboard.json"
# What hack/media/encoder.py sends: 1200 kbit/s of H.264 (CBR: maxrate = bitrate) and
# 64 kbit/s of AAC, a keyframe a second.
ENCODER_BITS_PER_SECOND = (1200 + 64) * 1000


@pytest.fixture
def metrics_operator(
    cluster: LocalCluster, operator: OperatorProcess, tmp_path: Path
) -> Iterator[tuple[OperatorProcess, int]]:
    """The operator with --metrics on a port of its own, allowing loopback destinations."""
    operator.stop()
    port = free_port()
    proc = OperatorProcess(
        cluster.kubeconfig,
        tmp_path / "operator.log",
        env={"RESTREAM_ALLOW_PRIVATE_DESTINATIONS": "true"},
    )
    try:
        proc.start("--webhook", f"local:127.0.0.1:{free_port()}", "--metrics", f"127.0.0.1:{port}")
        wait_for_webhooks(cluster)
        yield proc, port
    finally:
        proc.stop()
        operator.start()
        wait_for_webhooks(cluster)


def _targets(world: World, namespace: str, operator_port: int) -> list[Target]:
    """What the chart's ServiceMonitor and PodMonitor give: the operator; each media pod
    with its namespace, pod and LiveStream labels."""
    pod = {"namespace": namespace, "livestream": NAME}
    ingest = {**pod, "pod": naming.ingest_name(NAME)}
    targets = [
        Target("restream-operator", f"127.0.0.1:{operator_port}"),
        Target("restream-media", f"127.0.0.1:{world.ingest.agent_port}", ingest),
    ]
    for name, relay in world.relays.items():
        labels = {**pod, "pod": naming.restream_slug(name)}
        targets.append(Target("restream-media", f"127.0.0.1:{relay.agent_port}", labels))
    return targets


def _one(prom: Prometheus, expr: str) -> float:
    values = prom.values(expr)
    assert len(values) == 1, f"{expr}: {values}"
    return next(iter(values.values()))


def _by_restream(prom: Prometheus, expr: str) -> dict[str, float]:
    return {s["metric"]["restream"]: float(s["value"][1]) for s in prom.query(expr)}


def dashboard_exprs() -> list[str]:
    doc = json.loads(DASHBOARD.read_text())
    exprs = [
        target["expr"]
        for panel in doc["panels"]
        for target in panel.get("targets", [])
        if target.get("expr")
    ]
    exprs += [v["query"]["query"] for v in doc["templating"]["list"] if v["type"] == "query"]
    return exprs


def runnable(expr: str) -> str:
    """A dashboard expression as Grafana would send it: template variables at "All"."""
    expr = expr.replace("$__rate_interval", "5m").replace("$__interval", "1m")
    expr = re.sub(r'=~?"\$\w+"', '=~".*"', expr)
    # label_values(metric, label), a variable's query: the metric itself.
    return re.sub(r"^label_values\((.+),\s*\w+\)$", r"\1", expr)


def test_prometheus_scrapes_every_listed_series_with_plausible_values(
    cluster: LocalCluster,
    namespace: str,
    metrics_operator: tuple[OperatorProcess, int],
) -> None:
    _, operator_port = metrics_operator
    with served_by_real_agents(cluster, namespace) as world:
        procs, ingest = world.procs, world.ingest
        prom = prometheus.start_prometheus(
            procs, world.root / "prometheus", _targets(world, namespace, operator_port)
        )
        start_publisher(procs, ingest, world.stream_key)

        seen: list[Any] = []

        def live() -> bool:
            seen[:] = prom.query('restream_relay_state{state="Live"} == 1')
            return {s["metric"]["restream"] for s in seen} == set(world.relays)

        try:
            wait_for(live, "both relays Live in Prometheus", 40, every=0.5)
        except AssertionError as e:
            raise AssertionError(f"{e}: {seen}; relays: {_relay_states(world)}") from None
        # The target labels the chart's monitors give, as a dashboard reads them.
        assert {
            (s["metric"]["namespace"], s["metric"]["livestream"], s["metric"]["pod"]) for s in seen
        } == {(namespace, NAME, naming.restream_slug(n)) for n in world.relays}
        wait_for(
            lambda: livestream_status(cluster, namespace).get("liveRestreams") == "2/2",
            "the operator's status: 2/2 Live",
            20,
        )
        # A few seconds of steady relaying for the rates; reviews for the webhook's.
        for i in range(3):
            cluster.kubectl(
                "create", "--dry-run=server", "-n", namespace, "-f", "-",
                input=json.dumps(_livestream(cluster, namespace, f"{NAME}-{i}")),
            )  # fmt: skip
        time.sleep(12)

        # Every series the README lists is there, and nothing of ours it does not list.
        listed = readme_metrics()
        names = {
            s["metric"]["__name__"]
            for s in prom.query('group by (__name__) ({__name__=~"restream_.+"})')
        }
        wanted = set().union(*(sample_names(n, kind) for n, kind in listed.items()))
        assert names == wanted

        # The operator's view: one LiveStream Live, two restreams Live.
        ns = f'namespace="{namespace}"'
        assert _one(prom, f'restream_operator_livestreams{{{ns},state="Live"}}') == 1
        assert _one(prom, f'restream_operator_restreams{{{ns},state="Live"}}') == 2
        assert _one(prom, "sum(restream_operator_reconciles_total)") >= 1
        assert _one(prom, "restream_operator_reconcile_duration_seconds_count") >= 1
        assert _one(prom, "restream_operator_status_writes_total") >= 1
        assert _one(prom, 'restream_operator_webhook_reviews_total{verdict="allowed"}') >= 4
        assert _one(prom, "restream_operator_webhook_review_duration_seconds_count") >= 4
        # No spec refused and no name taken. A failed reconcile may be counted: this
        # operator resumes every LiveStream of the shared cluster, earlier tests' ones in
        # namespaces being deleted among them, whose writes the API server refuses.
        errors = {
            s["metric"].get("reason", ""): float(s["value"][1])
            for s in prom.query("restream_operator_reconcile_errors_total")
        }
        print("reconcile errors by reason:", errors)
        assert errors.get("InvalidSpec", 0) == 0 and errors.get("NameConflict", 0) == 0, errors

        # The agents' view: bitrates within ±20 % of what the encoder sends.
        lo, hi = 0.8 * ENCODER_BITS_PER_SECOND, 1.2 * ENCODER_BITS_PER_SECOND
        ingest_bps = _one(prom, "restream_ingest_bitrate_bits_per_second")
        received_bps = _one(prom, "rate(restream_ingest_received_bytes_total[10s]) * 8")
        relays_bps = _by_restream(prom, "restream_relay_bitrate_bits_per_second")
        sent_bps = _by_restream(prom, "rate(restream_relay_sent_bytes_total[10s]) * 8")
        figures = {"ingest": ingest_bps, "received": received_bps}
        figures |= {f"relay {k}": v for k, v in relays_bps.items()}
        figures |= {f"sent {k}": v for k, v in sent_bps.items()}
        print("bit/s:", figures)
        assert len(relays_bps) == len(sent_bps) == 2
        assert all(lo <= v <= hi for v in figures.values()), figures
        assert _one(prom, "restream_ingest_publishing") == 1
        assert _one(prom, "restream_ingest_keyframe_interval_seconds") == 1.0
        assert _one(prom, "restream_ingest_nginx_up") == 1
        # The publisher, two relays and the probe.
        assert _one(prom, "restream_ingest_clients") >= 4
        assert set(prom.values("restream_relay_live").values()) == {1.0}
        assert all(
            0.8 <= v <= 1.2 for v in prom.values("restream_relay_ffmpeg_speed_ratio").values()
        )
        assert set(prom.values("restream_relay_restarts_total").values()) == {0.0}

        # Every expression of the dashboard returns data.
        exprs = dashboard_exprs()
        assert len(exprs) >= 10
        empty = [e for e in exprs if not prom.query(runnable(e))]
        assert not empty, empty


def _relay_states(world: World) -> dict[str, Any]:
    out = {}
    for name, relay in world.relays.items():
        try:
            with urllib.request.urlopen(relay.status_url, timeout=2) as r:  # noqa: S310
                out[name] = json.loads(r.read()).get("state")
        except OSError as e:
            out[name] = str(e)
    return out


def _livestream(cluster: LocalCluster, namespace: str, name: str) -> dict[str, Any]:
    """The LiveStream's manifest under another name: a CREATE the webhook reviews."""
    doc: dict[str, Any] = json.loads(
        cluster.kubectl("get", "livestream", NAME, "-n", namespace, "-o", "json").stdout
    )
    meta = doc["metadata"]
    return {
        "apiVersion": doc["apiVersion"],
        "kind": doc["kind"],
        "metadata": {"name": name, "namespace": meta["namespace"]},
        "spec": doc["spec"],
    }
