"""Objects the cluster tests create by hand."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hack.localcluster.controlplane import LocalCluster


def squatter(name: str, **metadata: Any) -> dict[str, Any]:
    """A Deployment of someone else's, holding ``name`` (``metadata``: e.g. its
    namespace or ownerReferences)."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, **metadata},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": "squatter"}},
            "template": {
                "metadata": {"labels": {"app": "squatter"}},
                "spec": {"containers": [{"name": "c", "image": "squatter:1"}]},
            },
        },
    }


def namespace_viewer(cluster: LocalCluster, namespace: str, tmp_path: Path) -> Path:
    """A kubeconfig whose user (a ServiceAccount's token) may get, list and watch
    LiveStreams in ``namespace`` and nothing else, with that namespace as its context's."""
    cluster.kubectl("create", "serviceaccount", "viewer", "-n", namespace)
    cluster.kubectl(
        "create", "role", "livestream-viewer", "-n", namespace,
        "--verb=get,list,watch", "--resource=livestreams.restream.dev",
    )  # fmt: skip
    cluster.kubectl(
        "create", "rolebinding", "viewer", "-n", namespace,
        "--role=livestream-viewer", f"--serviceaccount={namespace}:viewer",
    )  # fmt: skip
    token = cluster.kubectl("create", "token", "viewer", "-n", namespace).stdout.strip()
    config = json.loads(cluster.kubeconfig.read_text())
    config["users"] = [{"name": "viewer", "user": {"token": token}}]
    config["contexts"] = [
        {
            "name": "viewer",
            "context": {"cluster": "local", "user": "viewer", "namespace": namespace},
        }
    ]
    config["current-context"] = "viewer"
    path = tmp_path / "viewer.kubeconfig"
    path.write_text(json.dumps(config))
    path.chmod(0o600)
    return path
