"""Generates deploy/ (plain manifests, a kustomize base) from the Helm chart.

    python hack/deploy.py HELM [OUT_DIR]      (make deploy)

deploy/ is committed so that `kubectl apply -k deploy/` and GitOps tools need no Helm;
a test fails when it is not what the chart renders.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

CHECKOUT = Path(__file__).resolve().parents[1]
RELEASE = "restream-operator"
NAMESPACE = "restream-system"
HEADER = "# Generated from charts/restream-operator by `make deploy`. Do not edit.\n"


def render(helm: str) -> dict[str, str]:
    """File name -> content, for every file of deploy/."""
    out = subprocess.run(
        [
            helm,
            "template",
            RELEASE,
            str(CHECKOUT / "charts" / RELEASE),
            "--namespace",
            NAMESPACE,
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    docs = [d for d in yaml.safe_load_all(out) if d]
    groups: dict[str, list[dict[str, object]]] = {
        "crds.yaml": [],
        "rbac.yaml": [],
        "operator.yaml": [],
    }
    for doc in docs:
        kind = str(doc["kind"])
        if kind == "CustomResourceDefinition":
            groups["crds.yaml"].append(doc)
        elif kind in ("ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "ServiceAccount"):
            groups["rbac.yaml"].append(doc)
        else:
            groups["operator.yaml"].append(doc)
    files = {
        "namespace.yaml": yaml.safe_dump(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
            sort_keys=False,
        )
    }
    for name, group in groups.items():
        files[name] = yaml.safe_dump_all(group, sort_keys=False, width=100)
    files["kustomization.yaml"] = yaml.safe_dump(
        {
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "namespace": NAMESPACE,
            "resources": ["namespace.yaml", "crds.yaml", "rbac.yaml", "operator.yaml"],
        },
        sort_keys=False,
    )
    return {name: HEADER + text for name, text in files.items()}


def main() -> int:
    helm = sys.argv[1]
    out = Path(sys.argv[2]) if len(sys.argv) > 2 else CHECKOUT / "deploy"
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("*.yaml"):
        stale.unlink()
    for name, text in render(helm).items():
        (out / name).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
