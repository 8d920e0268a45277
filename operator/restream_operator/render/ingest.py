"""The ingest: nginx-rtmp plus its agent, one pod, behind two Services.

``<ls>-ingest`` is what encoders publish to (type from spec: ClusterIP, NodePort or
LoadBalancer; RTMP and, when on, HLS). ``<ls>-ingest-internal`` is ClusterIP only and is
what relays use: RTMP to play, and the agent's HTTP port to ask whether a broadcast is
on. The agent port is never exposed outside the cluster, whatever the public type, and
the public Service can be fenced (loadBalancerSourceRanges) without cutting relays off.
"""

from __future__ import annotations

import hashlib

from .. import endpoints, naming, rollout
from ..agent import contract
from ..settings import Settings
from . import common
from .common import Obj, Owner
from .nginx import TLS_CERT, TLS_DIR, TLS_KEY, NginxParams, nginx_conf, tls_conf

CONFIG_FILE = "nginx.conf"
TLS_CONFIG_FILE = "tls.conf"
CONFIG_DIR = "/etc/restream"
ANNOTATION_CONFIG_HASH = "restream.dev/config-hash"
DEFAULT_RESOURCES: Obj = {
    "requests": {"cpu": "100m", "memory": "64Mi"},
    "limits": {"memory": "512Mi"},
}


def config_map(owner: Owner, hls: bool, tls: bool = False) -> Obj:
    params = NginxParams(hls=hls, tls=tls)
    data = {CONFIG_FILE: nginx_conf(params)}
    if tls:
        data[TLS_CONFIG_FILE] = tls_conf(params)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": common.metadata(
            owner,
            naming.ingest_name(owner.name),
            naming.labels(owner.name, naming.COMPONENT_INGEST),
        ),
        "data": data,
    }


def spec_inputs(owner: Owner) -> Obj:
    """The parts of the LiveStream's spec the ingest's pod template is made from (see
    rollout.py): the Service's type and annotations are not, they replace no pod."""
    spec = owner.spec
    inputs: Obj = {
        "playback": spec.playback.model_dump(mode="json", by_alias=True),
        "resources": spec.ingest.model_dump(mode="json", by_alias=True)["resources"],
        "streamKeySecretRef": spec.model_dump(mode="json", by_alias=True)["streamKeySecretRef"],
    }
    # Only when set: an ingest without RTMPS keeps the stamp it had before the field was.
    if spec.ingest.tls is not None:
        inputs["tls"] = spec.ingest.tls.model_dump(mode="json", by_alias=True)
    if spec.ingest.srt is not None:
        inputs["srt"] = spec.ingest.srt.model_dump(mode="json", by_alias=True)
    if spec.ingest.protocols is not None:
        inputs["protocols"] = sorted(spec.ingest.protocols)
    return inputs


def deployment(
    owner: Owner,
    settings: Settings,
    config: Obj,
    key_secret: tuple[str, str],
    play_token_secret: str,
) -> Obj:
    name = naming.ingest_name(owner.name)
    labels = naming.labels(owner.name, naming.COMPONENT_INGEST)
    served = owner.spec.ingest.serves
    tls = owner.spec.ingest.tls if served("RTMPS") else None
    config_hash = hashlib.sha256(
        "".join(config["data"][k] for k in sorted(config["data"])).encode()
    ).hexdigest()[:16]
    ports = [
        {"name": "rtmp", "containerPort": contract.RTMP_PORT, "protocol": "TCP"},
        {"name": "agent", "containerPort": contract.AGENT_PORT, "protocol": "TCP"},
    ]
    if owner.spec.playback.hls:
        ports.append({"name": "hls", "containerPort": contract.HLS_PORT, "protocol": "TCP"})
    if tls is not None:
        ports.append({"name": "rtmps", "containerPort": contract.RTMPS_PORT, "protocol": "TCP"})
    srt = owner.spec.ingest.srt if served("SRT") else None
    srt_args: list[str] = []
    if srt is not None:
        ports.append({"name": "srt", "containerPort": contract.SRT_PORT, "protocol": "UDP"})
        srt_args = [
            "--srt-listen",
            f"0.0.0.0:{contract.SRT_PORT}",
            "--srt-latency-ms",
            str(srt.latency_ms),
        ]
    mounts: list[Obj] = [
        {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    volumes: list[Obj] = [
        {"name": "config", "configMap": {"name": config["metadata"]["name"]}},
        {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}},
    ]
    if tls is not None:
        # A directory mount (no subPath): the kubelet swaps renewed files in place, and
        # the agent reloads the terminator when it sees them change.
        mounts.append({"name": "tls", "mountPath": TLS_DIR, "readOnly": True})
        volumes.append(
            {
                "name": "tls",
                "secret": {
                    "secretName": tls.secret_ref.name,
                    "items": [{"key": k, "path": k} for k in (TLS_CERT, TLS_KEY)],
                    # Owner root, group the pod's fsGroup: the agent's user reads it.
                    "defaultMode": 0o440,
                    # The pod starts without it (cert-manager may still be issuing):
                    # RTMP serves meanwhile, and the kubelet adds the files once it exists.
                    "optional": True,
                },
            }
        )
    container: Obj = {
        "name": "ingest",
        "image": settings.ingest_image,
        "imagePullPolicy": settings.image_pull_policy,
        "args": [
            "restream-agent",
            "ingest",
            "--nginx-config",
            f"{CONFIG_DIR}/{CONFIG_FILE}",
            "--listen",
            f"0.0.0.0:{contract.AGENT_PORT}",
            *(["--hls-url", endpoints.hls_url(owner, settings)] if owner.spec.playback.hls else []),
            *(["--tls-config", f"{CONFIG_DIR}/{TLS_CONFIG_FILE}"] if tls is not None else []),
            # The relays (and the SRT listener, RTMPS's terminator) still use RTMP inside
            # the pod and the cluster: only an encoder's plain RTMP publish is refused.
            *(["--refuse-plain-rtmp"] if not served("RTMP") else []),
            *srt_args,
        ],
        "env": [
            common.secret_env(contract.ENV_STREAM_KEY, *key_secret),
            common.secret_env(contract.ENV_PLAY_TOKEN, play_token_secret, "token"),
        ],
        "ports": ports,
        "readinessProbe": common.http_probe(contract.PATH_READYZ, "agent", 2, 2),
        "livenessProbe": common.http_probe(contract.PATH_HEALTHZ, "agent", 10, 3),
        "resources": common.resources(owner.spec.ingest.resources, DEFAULT_RESOURCES),
        "securityContext": common.container_security_context(),
        "volumeMounts": mounts,
    }
    deployment: Obj = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": common.metadata(owner, name, labels),
        "spec": {
            "replicas": 1,
            # Never two nginx for one stream: the encoder has one connection.
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": naming.selector(owner.name, naming.COMPONENT_INGEST)},
            "template": {
                "metadata": {
                    "labels": labels,
                    "annotations": {
                        ANNOTATION_CONFIG_HASH: config_hash,
                        **common.scrape_annotations(settings),
                    },
                },
                "spec": common.placement(
                    {
                        "automountServiceAccountToken": False,
                        "enableServiceLinks": False,
                        "securityContext": common.pod_security_context(),
                        "terminationGracePeriodSeconds": 15,
                        "containers": [container],
                        "volumes": volumes,
                    },
                    settings,
                ),
            },
        },
    }
    return rollout.stamp(deployment, spec_inputs(owner))


def service(owner: Owner) -> Obj:
    ingest = owner.spec.ingest
    ports: list[Obj] = []
    if ingest.serves("RTMP"):
        ports.append(
            {"name": "rtmp", "port": contract.RTMP_PORT, "targetPort": "rtmp", "protocol": "TCP"}
        )
    if owner.spec.playback.hls:
        ports.append(
            {"name": "hls", "port": contract.HLS_PORT, "targetPort": "hls", "protocol": "TCP"}
        )
    if ingest.serves("RTMPS"):
        ports.append(
            {
                "name": "rtmps",
                "port": contract.RTMPS_PORT,
                "targetPort": "rtmps",
                "protocol": "TCP",
            }
        )
    if ingest.serves("SRT"):
        # TCP and UDP on one Service: a LoadBalancer needs MixedProtocolLBService (GA in
        # Kubernetes 1.26) and a cloud that implements it (README, "Contribution over
        # RTMPS and SRT").
        ports.append(
            {"name": "srt", "port": contract.SRT_PORT, "targetPort": "srt", "protocol": "UDP"}
        )
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": common.metadata(
            owner,
            naming.ingest_name(owner.name),
            naming.labels(owner.name, naming.COMPONENT_INGEST),
            dict(ingest.service_annotations or {}),
        ),
        "spec": {
            "type": ingest.service_type,
            "selector": naming.selector(owner.name, naming.COMPONENT_INGEST),
            "ports": ports,
        },
    }


def internal_service(owner: Owner) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": common.metadata(
            owner,
            naming.ingest_internal_name(owner.name),
            naming.labels(owner.name, naming.COMPONENT_INGEST),
        ),
        "spec": {
            "type": "ClusterIP",
            "selector": naming.selector(owner.name, naming.COMPONENT_INGEST),
            "ports": [
                {
                    "name": "rtmp",
                    "port": contract.RTMP_PORT,
                    "targetPort": "rtmp",
                    "protocol": "TCP",
                },
                {
                    "name": "agent",
                    "port": contract.AGENT_PORT,
                    "targetPort": "agent",
                    "protocol": "TCP",
                },
            ],
        },
    }
