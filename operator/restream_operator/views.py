"""What the operator keeps of its children: small views built from watch events.

Built by pure functions from the objects kopf's watches deliver; ``status.py`` computes
from them. Keyed by (namespace, LiveStream name), from the children's labels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import naming
from .status import DeploymentView, PodView, ServiceView

IndexKey = tuple[str, str]  # (namespace, livestream name)


@dataclass
class ChildViews:
    deployments: dict[str, DeploymentView] = field(default_factory=dict)
    pods: dict[str, tuple[str, PodView]] = field(default_factory=dict)  # name -> (group, view)
    service: ServiceView | None = None

    def pods_by_group(self) -> dict[str, list[PodView]]:
        out: dict[str, list[PodView]] = {}
        for group, pod in self.pods.values():
            out.setdefault(group, []).append(pod)
        return out


def key_of(obj: dict[str, Any]) -> IndexKey | None:
    meta = obj.get("metadata") or {}
    livestream = (meta.get("labels") or {}).get(naming.LABEL_LIVESTREAM)
    return (meta.get("namespace") or "", livestream) if livestream else None


def deployment_view(obj: dict[str, Any]) -> DeploymentView:
    meta, spec, status = obj["metadata"], obj.get("spec") or {}, obj.get("status") or {}
    replicas = int(spec.get("replicas", 1))
    seen = int(status.get("observedGeneration") or 0) >= int(meta.get("generation") or 0)
    return DeploymentView(
        name=meta["name"],
        replicas=replicas,
        available=int(status.get("availableReplicas") or 0),
        rolled_out=seen and int(status.get("updatedReplicas") or 0) >= replicas,
    )


def pod_group(obj: dict[str, Any]) -> str:
    """What a pod belongs to: "ingest", or the restream slug of its relay."""
    labels = obj["metadata"].get("labels") or {}
    return str(labels.get(naming.LABEL_RESTREAM) or labels.get(naming.LABEL_COMPONENT) or "")


def pod_view(obj: dict[str, Any]) -> PodView:
    meta, status = obj["metadata"], obj.get("status") or {}
    conditions = {c.get("type"): c for c in status.get("conditions") or []}
    ready = conditions.get("Ready") or {}
    containers = status.get("containerStatuses") or []
    waiting: dict[str, Any] = next(
        (c["state"]["waiting"] for c in containers if (c.get("state") or {}).get("waiting")), {}
    )
    return PodView(
        name=meta["name"],
        ip=status.get("podIP"),
        phase=status.get("phase") or "Pending",
        ready=ready.get("status") == "True",
        ready_since=ready.get("lastTransitionTime"),
        restarts=sum(int(c.get("restartCount") or 0) for c in containers),
        waiting_reason=waiting.get("reason"),
        waiting_message=waiting.get("message"),
        deleting=meta.get("deletionTimestamp") is not None,
    )


def service_view(obj: dict[str, Any]) -> ServiceView:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    ingress = (status.get("loadBalancer") or {}).get("ingress") or [{}]
    node_ports = [p.get("nodePort") for p in spec.get("ports") or [] if p.get("name") == "rtmp"]
    return ServiceView(
        type=spec.get("type", "ClusterIP"),
        load_balancer_host=ingress[0].get("hostname") or ingress[0].get("ip"),
        node_port=node_ports[0] if node_ports else None,
    )
