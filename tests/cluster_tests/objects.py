"""Objects the cluster tests create by hand."""

from __future__ import annotations

from typing import Any


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
