"""A real Prometheus (Debian's `prometheus`, hack/packages.sh metrics) for the tests: on
127.0.0.1, with a generated config, its data in the caller's directory, started and
stopped by PID through the caller's ``Processes``.
"""

from __future__ import annotations

import json
import shutil
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hack.localcluster.controlplane import free_port
from hack.media.harness import Proc, Processes, wait_for

BINARY = "prometheus"
SCRAPE_INTERVAL = "1s"


@dataclass(frozen=True)
class Target:
    """One endpoint to scrape: ``address`` HOST:PORT, with target labels (what a
    PodMonitor's relabelling gives: namespace, pod, livestream...)."""

    job: str
    address: str
    labels: dict[str, str] = field(default_factory=dict)


def available() -> bool:
    return shutil.which(BINARY) is not None


def config(targets: list[Target]) -> dict[str, Any]:
    jobs: dict[str, list[dict[str, Any]]] = {}
    for t in targets:
        jobs.setdefault(t.job, []).append({"targets": [t.address], "labels": t.labels})
    return {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
        "scrape_configs": [
            {"job_name": job, "scrape_timeout": SCRAPE_INTERVAL, "static_configs": groups}
            for job, groups in jobs.items()
        ],
    }


@dataclass
class Prometheus:
    port: int
    proc: Proc

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def api(self, path: str, **params: str) -> Any:
        query = urllib.parse.urlencode(params)
        url = f"{self.url}/api/v1/{path}?{query}"  # http://127.0.0.1 only
        with urllib.request.urlopen(url, timeout=10) as r:  # noqa: S310
            doc = json.loads(r.read())
        assert doc["status"] == "success", doc
        return doc["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's vector (or a scalar as one sample without labels)."""
        data = self.api("query", query=expr)
        if data["resultType"] == "vector":
            return list(data["result"])
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        raise AssertionError(f"{expr}: unexpected {data['resultType']}")

    def values(self, expr: str) -> dict[str, float]:
        """Each sample's labels (as sorted k=v text) -> value."""
        out = {}
        for sample in self.query(expr):
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample["metric"].items()))
            out[labels] = float(sample["value"][1])
        return out

    def targets_up(self) -> bool:
        active = self.api("targets", state="active")["activeTargets"]
        return bool(active) and all(t["health"] == "up" for t in active)


def start_prometheus(procs: Processes, root: Path, targets: list[Target]) -> Prometheus:
    """Prometheus scraping ``targets`` every second; returns once every one is up."""
    root.mkdir(parents=True, exist_ok=True)
    conf = root / "prometheus.yml"
    conf.write_text(json.dumps(config(targets), indent=1))  # JSON is YAML
    port = free_port()
    proc = procs.start(
        "prometheus",
        [
            BINARY,
            f"--config.file={conf}",
            f"--storage.tsdb.path={root / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
    )
    prom = Prometheus(port, proc)

    def up() -> bool:
        assert proc.alive(), proc.log.read_text()[-2000:]
        try:
            return prom.targets_up()
        except OSError:
            return False

    wait_for(up, "Prometheus with every target up", 30, every=0.5)
    return prom
