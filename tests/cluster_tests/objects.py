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


def condition(kind: str, status: str, reason: str = "Why", message: str = "") -> dict[str, str]:
    """A LiveStream status condition, as the CRD's schema wants it, written by a test
    in the operator's stead."""
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": "2026-01-01T00:00:00Z",
    }
