"""What the operator keeps of its children: small views built from watch events.

Built by pure functions (``*_view``) from the objects kopf's watches deliver; ``status.py``
computes from them. Keyed by (namespace, LiveStream name), from the children's labels.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import orjson

from . import models, naming
from .kube import FIELD_MANAGER

# On every child the operator applies: a digest of what it wrote. The same digest, and
# nobody else's write since, means that applying again would change nothing.
ANNOTATION_APPLIED = "restream.dev/applied"
# Writers of a child's metadata that are not a change of what the operator applied.
BUILTIN_WRITERS = ("kube-controller-manager",)

IndexKey = tuple[str, str]  # (namespace, livestream name)


@dataclass(frozen=True)
class PodView:
    name: str
    group: str = ""  # what the pod belongs to: "ingest", or its relay's restream slug
    ip: str | None = None
    phase: str = "Pending"
    ready: bool = False
    restarts: int = 0
    waiting_reason: str | None = None
    waiting_message: str | None = None
    deleting: bool = False


@dataclass(frozen=True)
class DeploymentView:
    name: str
    available: int = 0
    rolled_out: bool = False  # the controller has seen the latest spec and finished

    @property
    def up(self) -> bool:
        """Rolled out, and a pod available."""
        return self.available >= 1 and self.rolled_out


@dataclass(frozen=True)
class ServiceView:
    name: str
    type: str = "ClusterIP"
    load_balancer_host: str | None = None
    node_port: int | None = None
    rtmps_node_port: int | None = None
    srt_node_port: int | None = None


@dataclass(frozen=True)
class Written:
    """A child the operator applies, as last seen: who last wrote it (its fingerprint)."""

    kind: str
    name: str
    fingerprint: str


@dataclass(frozen=True)
class Held:
    """Who holds a name the operator applies to, from the object's metadata: enough to
    know, without a GET, that a child is the operator's and as it last wrote it."""

    controller_uid: str | None  # the owner reference marked controller
    applied: str | None  # its ANNOTATION_APPLIED
    foreign: bool  # someone other than the operator wrote its spec or metadata
    fingerprint: str


ChildView = PodView | DeploymentView | ServiceView | Written
ChildRef = tuple[str, str]  # (kind, name)


@dataclass
class ChildViews:
    deployments: dict[str, DeploymentView] = field(default_factory=dict)
    pods: dict[str, PodView] = field(default_factory=dict)
    service: ServiceView | None = None  # the public ingest Service
    written: dict[ChildRef, str] = field(default_factory=dict)  # -> fingerprint
    # Children seen deleted (not merely not seen yet: a watch event may lag a create).
    gone: set[ChildRef] = field(default_factory=set)

    def put(self, view: ChildView) -> None:
        if isinstance(view, DeploymentView):
            self.deployments[view.name] = view
        elif isinstance(view, PodView):
            self.pods[view.name] = view
        elif isinstance(view, Written):
            self.written[(view.kind, view.name)] = view.fingerprint
            self.gone.discard((view.kind, view.name))
        else:
            self.service = view

    def drop(self, kind: str, name: str) -> None:
        if self.written.pop((kind, name), None) is not None:
            self.gone.add((kind, name))
        if kind == "Deployment":
            self.deployments.pop(name, None)
        elif kind == "Pod":
            self.pods.pop(name, None)
        elif kind == "Service" and self.service is not None and self.service.name == name:
            self.service = None

    def empty(self) -> bool:
        return not (self.deployments or self.pods or self.written) and self.service is None

    def pods_by_group(self) -> dict[str, list[PodView]]:
        out: dict[str, list[PodView]] = {}
        for pod in self.pods.values():
            out.setdefault(pod.group, []).append(pod)
        return out


def live_pod(pods: list[PodView]) -> PodView | None:
    """The pod that matters: the newest one not being deleted (Recreate: at most one)."""
    candidates = [p for p in pods if not p.deleting]
    return candidates[-1] if candidates else None


def livestream_key(obj: dict[str, Any]) -> IndexKey:
    meta = obj["metadata"]
    return (meta.get("namespace") or "", meta["name"])


def key_of(obj: dict[str, Any]) -> IndexKey | None:
    """The LiveStream a child belongs to, from its labels."""
    meta = obj.get("metadata") or {}
    livestream = (meta.get("labels") or {}).get(naming.LABEL_LIVESTREAM)
    return (meta.get("namespace") or "", livestream) if livestream else None


def deployment_view(obj: dict[str, Any]) -> DeploymentView:
    meta, spec, status = obj["metadata"], obj.get("spec") or {}, obj.get("status") or {}
    replicas = int(spec.get("replicas", 1))
    seen = int(status.get("observedGeneration") or 0) >= int(meta.get("generation") or 0)
    return DeploymentView(
        name=meta["name"],
        available=int(status.get("availableReplicas") or 0),
        rolled_out=seen and int(status.get("updatedReplicas") or 0) >= replicas,
    )


def pod_group(obj: dict[str, Any]) -> str:
    """What a pod belongs to: "ingest", or the restream slug of its relay."""
    labels = obj["metadata"].get("labels") or {}
    if labels.get(naming.LABEL_RENDITION):
        return naming.encoder_group(str(labels[naming.LABEL_RENDITION]))
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
        group=pod_group(obj),
        ip=status.get("podIP"),
        phase=status.get("phase") or "Pending",
        ready=ready.get("status") == "True",
        restarts=sum(int(c.get("restartCount") or 0) for c in containers),
        waiting_reason=waiting.get("reason"),
        waiting_message=waiting.get("message"),
        deleting=meta.get("deletionTimestamp") is not None,
    )


def service_view(obj: dict[str, Any]) -> ServiceView:
    meta, spec, status = obj["metadata"], obj.get("spec") or {}, obj.get("status") or {}
    ingress = (status.get("loadBalancer") or {}).get("ingress") or [{}]
    node_ports = {p.get("name"): p.get("nodePort") for p in spec.get("ports") or []}
    return ServiceView(
        name=meta["name"],
        type=spec.get("type", "ClusterIP"),
        load_balancer_host=ingress[0].get("hostname") or ingress[0].get("ip"),
        node_port=node_ports.get("rtmp"),
        rtmps_node_port=node_ports.get("rtmps"),
        srt_node_port=node_ports.get("srt"),
    )


def fingerprint(obj: dict[str, Any]) -> str:
    """Changes whenever anyone changes the object's spec or metadata, and only then.

    From its managedFields: the API server records there, per writer, what it set and
    when. A status writer (the Deployment controller reporting replicas) is left out,
    so a child that only reports progress keeps its fingerprint, and the operator can
    tell its own write (whose result it keeps) from anyone else's.
    """
    entries = [
        e for e in obj["metadata"].get("managedFields") or [] if e.get("subresource") != "status"
    ]
    # orjson: this runs on every watch event of a child (thousands a minute while 1,000
    # LiveStreams converge); the standard library's encoder was 3% of the operator's CPU.
    return hashlib.sha256(orjson.dumps(entries, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def written_view(kind: str, obj: dict[str, Any], fp: str | None = None) -> Written:
    """``fp``: the object's fingerprint, when already computed."""
    return Written(kind, obj["metadata"]["name"], fingerprint(obj) if fp is None else fp)


def foreign_writers(obj: dict[str, Any]) -> list[str]:
    """Who else set fields of a child's spec or metadata (its managedFields), leaving out
    status writers and the controllers that annotate what they manage (the Deployment
    controller's revision)."""
    return sorted(
        {
            str(entry.get("manager"))
            for entry in obj["metadata"].get("managedFields") or []
            if entry.get("subresource") != "status"
            and entry.get("manager") not in (FIELD_MANAGER, *BUILTIN_WRITERS)
        }
    )


def controller_of(obj: dict[str, Any]) -> dict[str, Any] | None:
    """The object's owner reference marked controller, if any."""
    refs = obj["metadata"].get("ownerReferences") or []
    return next((r for r in refs if r.get("controller")), None)


def held_view(obj: dict[str, Any]) -> Held:
    controller = controller_of(obj) or {}
    return Held(
        controller_uid=controller.get("uid"),
        applied=(obj["metadata"].get("annotations") or {}).get(ANNOTATION_APPLIED),
        foreign=bool(foreign_writers(obj)),
        fingerprint=fingerprint(obj),
    )


def name_held_view(obj: dict[str, Any]) -> Held:
    """held_view, of an object no LiveStream controls only who controls it: such an
    object is never skipped as unchanged, so its managed fields are not read (most of a
    cluster's Deployments, on every status change they make)."""
    controller = controller_of(obj) or {}
    if controller.get("kind") == models.KIND:
        return held_view(obj)
    return Held(controller_uid=controller.get("uid"), applied=None, foreign=True, fingerprint="")
