"""A LiveStream as kubectl shows it (its status, what kstatus and Argo CD make of it)
and its children as someone else edits them: for the tests, the benchmarks and the demo."""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from hack.localcluster.controlplane import LocalCluster

CHECKOUT = Path(__file__).resolve().parents[2]
# The chart's Argo CD health check for LiveStream, and the README's argocd-cm merge patch
# that adds it to Argo CD (a unit test holds the two to the same text).
ARGOCD_HEALTH = CHECKOUT / "charts/restream-operator/files/argocd-health.lua"
ARGOCD_HEALTH_KEY = "resource.customizations.health.restream.dev_LiveStream"


def argocd_cm_patch() -> str:
    """The README's argocd-cm merge patch, as people copy it (marked by a comment)."""
    readme = (CHECKOUT / "README.md").read_text()
    found = re.search(r"<!-- argocd-health: [^\n]*-->\n```yaml\n(.*?)```\n", readme, re.S)
    if not found:
        raise LookupError("README.md lost its argocd-cm patch (or the comment marking it)")
    return found.group(1)


def many(count: int, destinations: int, namespace: str, prefix: str) -> str:
    """``count`` LiveStreams ``<prefix>-0000``... with ``destinations`` inline-key
    destinations each, as one multi-document YAML stream for `kubectl apply -f -`."""
    docs = [
        {
            "apiVersion": "restream.dev/v1alpha1",
            "kind": "LiveStream",
            "metadata": {"name": f"{prefix}-{i:04d}", "namespace": namespace},
            "spec": {
                "restreams": [
                    {
                        "name": f"Destination {d}",
                        "serverUrl": f"rtmp://d{d}.example.com/app",
                        "streamKey": f"key-{i}-{d}",
                    }
                    for d in range(destinations)
                ]
            },
        }
        for i in range(count)
    ]
    # Each document after a `---`, the first too: kubectl up to 1.30 reads a stream that
    # starts with `{` as one JSON document and fails at the first separator.
    return "".join(f"---\n{json.dumps(d)}\n" for d in docs)


def status_condition(
    kind: str, status: str, reason: str = "Why", message: str = ""
) -> dict[str, str]:
    """A LiveStream status condition, as the CRD's schema wants it, written by a test
    or a benchmark in the operator's stead."""
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": "2026-01-01T00:00:00Z",
    }


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


def kstatus(cluster: LocalCluster, obj: dict[str, Any]) -> str:
    """What kstatus, the library behind Flux's health checks, makes of a LiveStream as
    read: Current, InProgress, Failed, ... (hack/kstatus, built by build.sh)."""
    out = subprocess.run(
        [str(cluster.bin_dir / "kstatus")],
        input=json.dumps(obj), capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    return str(json.loads(out.stdout)["status"])


def argo_health(cluster: LocalCluster, obj: dict[str, Any]) -> dict[str, str]:
    """What Argo CD shows for a LiveStream as read, once the README's argocd-cm patch is
    applied: Argo CD's own settings and util/lua code run the check ({"status":
    "Healthy", "message": ...}; hack/argo-health, built by build.sh)."""
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as patch:
        patch.write(argocd_cm_patch())
        patch.flush()
        out = subprocess.run(
            [str(cluster.bin_dir / "argo-health"), patch.name],
            input=json.dumps(obj), capture_output=True, text=True, timeout=30, check=True,
        )  # fmt: skip
    return {k: str(v) for k, v in json.loads(out.stdout).items()}


def get(cluster: LocalCluster, namespace: str, name: str) -> dict[str, Any]:
    out = cluster.kubectl("get", "livestream", name, "-n", namespace, "-o", "json")
    return dict(json.loads(out.stdout))


def edit_relay_arg(
    cluster: LocalCluster, namespace: str, deployment: str, flag: str, value: str
) -> None:
    """Changes, by hand as someone else would (a JSON patch, not the operator's apply),
    the value after ``flag`` in a relay Deployment's container args."""
    obj = json.loads(
        cluster.kubectl("get", "deployment", deployment, "-n", namespace, "-o", "json").stdout
    )
    args = obj["spec"]["template"]["spec"]["containers"][0]["args"]
    path = f"/spec/template/spec/containers/0/args/{args.index(flag) + 1}"
    patch = [{"op": "replace", "path": path, "value": value}]
    cluster.kubectl(
        "patch", "deployment", deployment, "-n", namespace, "--type=json", "-p", json.dumps(patch)
    )
