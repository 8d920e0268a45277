"""A LiveStream's status as kubectl shows it: for the tests, the benchmarks and the demo."""

from __future__ import annotations

import json
from typing import Any

from hack.localcluster.controlplane import LocalCluster


def status(cluster: LocalCluster, namespace: str, name: str) -> dict[str, Any]:
    """The LiveStream's status ({} while it has none, or when it does not exist)."""
    got = cluster.kubectl("get", "livestream", name, "-n", namespace, "-o", "json", check=False)
    if got.returncode:
        return {}
    return dict(json.loads(got.stdout).get("status") or {})


def condition(st: dict[str, Any], type_: str) -> str | None:
    """A condition's status ("True", "False", "Unknown"), None when absent."""
    return next((c["status"] for c in st.get("conditions") or [] if c["type"] == type_), None)


def ready(cluster: LocalCluster, namespace: str, name: str) -> bool:
    return condition(status(cluster, namespace, name), "Ready") == "True"
