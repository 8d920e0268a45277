"""The README's list of metrics is what the operator and the agents expose (names and
types), and their values say what the agents know; without processes (the media tier's
tests/media/test_prometheus.py has a real Prometheus scrape them)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any, cast

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from hack.localcluster.controlplane import free_port
from restream_operator import httpclient, metrics
from restream_operator.agent.contract import RelayState
from restream_operator.agent.ffmpeg import speed_ratio
from restream_operator.agent.ingest import Ingest, IngestConfig, Publisher, parse_stat
from restream_operator.agent.metrics import Exposition
from restream_operator.agent.nginxconf import layout
from restream_operator.agent.redact import Redactor
from restream_operator.agent.relay import Relay, RelayConfig
from restream_operator.render.nginx import NginxParams, nginx_conf
from restream_operator.runtime import Runtime, StreamState
from tests.metrics_readme import readme_metrics

from .test_agent_ingest import STAT


def _families(text: bytes) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(text.decode())}


def _ours(text: bytes) -> dict[str, str]:
    """name -> type of the restream_* families (counters by their _total name)."""
    out = {}
    for name, family in _families(text).items():
        if name.startswith("restream_"):
            out[name + ("_total" if family.type == "counter" else "")] = family.type
    return out


def _ingest() -> Ingest:
    conf = nginx_conf(NginxParams())
    return Ingest(IngestConfig("/etc/restream/nginx.conf"), layout(conf), "k3y", "t0k", Redactor())


def _relay() -> Relay:
    cfg = RelayConfig("Youtube", "rtmp://i/live/stream", "http://i/status", "rtmp://d/app", "flv")
    return Relay(cfg, "dest-k3y", "t0k", Redactor(["dest-k3y"]))


def _runtime() -> Runtime:
    status = {
        "broadcasting": True,
        "restreams": [{"name": "A", "state": "Live"}, {"name": "B", "state": "Retrying"}],
    }
    objs = {
        "u1": {"metadata": {"namespace": "n1", "uid": "u1"}, "spec": {}, "status": status},
        "u2": {"metadata": {"namespace": "n1", "uid": "u2"}, "spec": {"suspend": True}},
        "u3": {
            "metadata": {"namespace": "n2", "uid": "u3"},
            "spec": {},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]},
        },
    }
    return cast(Runtime, SimpleNamespace(livestreams=objs, streams={"u3": StreamState()}))


def test_the_readme_lists_every_series_exposed_and_no_other() -> None:
    listed = readme_metrics()
    collector = metrics.RuntimeCollector(_runtime())
    metrics.REGISTRY.register(collector)
    try:
        exposed = _ours(generate_latest(metrics.REGISTRY))
    finally:
        metrics.REGISTRY.unregister(collector)
    exposed |= _ours(_ingest().metrics())
    exposed |= _ours(_relay().metrics())
    assert exposed == listed


def test_the_operator_counts_livestreams_and_restreams_by_state() -> None:
    families = {f.name: f for f in metrics.RuntimeCollector(_runtime()).collect()}
    live = {
        (s.labels["namespace"], s.labels["state"]): s.value
        for s in families["restream_operator_livestreams"].samples
        if s.value
    }
    assert live == {("n1", "Live"): 1, ("n1", "Suspended"): 1, ("n2", "Idle"): 1}
    restreams = {
        (s.labels["namespace"], s.labels["state"]): s.value
        for s in families["restream_operator_restreams"].samples
        if s.value
    }
    assert restreams == {("n1", "Live"): 1, ("n1", "Retrying"): 1}
    # Every state of a namespace is a series, 0 or not: dashboards sum them.
    assert len(families["restream_operator_restreams"].samples) == 2 * 8


def test_the_ingest_reports_its_publisher_and_nginx_stat() -> None:
    ingest = _ingest()
    ingest.publisher = Publisher("1", "10.0.0.7")
    ingest._stat.stat = parse_stat(STAT, "live", "stream")
    ingest._stat.bitrate_kbps = 1200
    ingest.refused["key"] = 2
    f = _families(ingest.metrics())
    assert f["restream_ingest_publishing"].samples[0].value == 1
    assert f["restream_ingest_bitrate_bits_per_second"].samples[0].value == 1_200_000
    assert f["restream_ingest_received_bytes"].samples[0].value == 152124
    assert f["restream_ingest_clients"].samples[0].value == 0  # no nclients in STAT
    refused = {s.labels["reason"]: s.value for s in f["restream_ingest_refused"].samples}
    assert refused == {"key": 2, "busy": 0, "token": 0, "protocol": 0}
    # Nobody publishes: nothing stale is reported.
    ingest.publisher = None
    f = _families(ingest.metrics())
    assert f["restream_ingest_bitrate_bits_per_second"].samples[0].value == 0


def test_the_relay_reports_one_state_and_no_key() -> None:
    relay = _relay()
    relay.state = RelayState.RETRYING
    relay.restarts = 3
    text = relay.metrics()
    f = _families(text)
    states = {s.labels["state"]: s.value for s in f["restream_relay_state"].samples}
    assert states == {s.value: float(s == RelayState.RETRYING) for s in RelayState}
    assert f["restream_relay_restarts"].samples[0].value == 3
    assert all(s.labels["restream"] == "Youtube" for s in f["restream_relay_live"].samples)
    assert b"dest-k3y" not in text and b"rtmp://" not in text


def test_ffmpeg_speed_ratio() -> None:
    assert speed_ratio("1.01x") == 1.01
    assert speed_ratio(" 0.998x") == 0.998
    assert speed_ratio("N/A") is None
    assert speed_ratio(None) is None


def test_each_agent_has_its_own_registry_with_process_series() -> None:
    a, b = Exposition(lambda: []), Exposition(lambda: [])
    assert a.registry is not b.registry
    assert "process_resident_memory_bytes" in _families(a.render())


def test_the_operator_serves_metrics_on_its_own_address() -> None:
    port = free_port()

    async def main() -> bytes:
        runner = await metrics.serve(_runtime(), f"127.0.0.1:{port}")
        try:
            code, body = await httpclient.get(f"http://127.0.0.1:{port}/metrics", 5)
            assert code == 200
            return body
        finally:
            await runner.cleanup()

    body = asyncio.run(main())
    assert 'restream_operator_livestreams{namespace="n1",state="Live"} 1.0' in body.decode()
    # Cleaned up: the collector is gone with the server.
    assert b"restream_operator_livestreams" not in generate_latest(metrics.REGISTRY)
