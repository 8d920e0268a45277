"""Pieces every child shares: metadata, owner reference, restricted pod security."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .. import models
from ..agent import contract
from ..models import ResourceRequirements
from ..settings import Settings

Obj = dict[str, Any]

# The UID/GID the media image's non-root user has (see Dockerfile).
RUN_AS = 10001


@dataclass(frozen=True)
class Owner:
    """The LiveStream whose children are rendered. `uid` is empty when rendering a file."""

    name: str
    namespace: str
    uid: str
    spec: models.LiveStreamSpec


def scrape_annotations(settings: Settings) -> dict[str, str]:
    """The conventional prometheus.io annotations of a media pod, when set to have them."""
    if not settings.pod_scrape_annotations:
        return {}
    return {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(contract.AGENT_PORT),
        "prometheus.io/path": contract.PATH_METRICS,
    }


def metadata(
    owner: Owner,
    name: str,
    labels: dict[str, str],
    annotations: dict[str, str] | None = None,
) -> Obj:
    meta: Obj = {"name": name, "namespace": owner.namespace, "labels": labels}
    if annotations:
        meta["annotations"] = annotations
    if owner.uid:
        meta["ownerReferences"] = [
            {
                "apiVersion": models.API_VERSION,
                "kind": models.KIND,
                "name": owner.name,
                "uid": owner.uid,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
    return meta


def pod_security_context() -> Obj:
    """The `restricted` Pod Security Standard."""
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS,
        "runAsGroup": RUN_AS,
        "fsGroup": RUN_AS,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def placement(pod_spec: Obj, settings: Settings) -> Obj:
    """The operator-wide nodeSelector, tolerations and image pull Secrets of media pods,
    if any (none set: the template stays as earlier versions rendered it, so that an
    operator upgrade replaces no pod)."""
    if settings.image_pull_secrets:
        pod_spec["imagePullSecrets"] = [{"name": name} for name in settings.image_pull_secrets]
    if settings.pod_node_selector:
        pod_spec["nodeSelector"] = dict(settings.pod_node_selector)
    if settings.pod_tolerations:
        pod_spec["tolerations"] = [dict(t) for t in settings.pod_tolerations]
    return pod_spec


def container_security_context() -> Obj:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }


def resources(spec: ResourceRequirements | None, default: Obj) -> Obj:
    if spec is None:
        return default
    return spec.model_dump(by_alias=True, exclude_none=True)


def secret_env(name: str, secret: str, key: str) -> Obj:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def http_probe(path: str, port: str, period: int, failures: int) -> Obj:
    return {
        "httpGet": {"path": path, "port": port},
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
    }


def media_pod_spec(container: Obj, volumes: list[Obj], settings: Settings) -> Obj:
    """The pod of a relay or an encoder: no API token, no service links, restricted."""
    return placement(
        {
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "securityContext": pod_security_context(),
            # The agent stops ffmpeg gracefully (FLV trailer flushed) well inside.
            "terminationGracePeriodSeconds": 10,
            "containers": [container],
            "volumes": volumes,
        },
        settings,
    )
