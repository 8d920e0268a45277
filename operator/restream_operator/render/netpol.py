"""NetworkPolicies that confine a LiveStream's pods, whatever admission let through.

Admission checks a destination's addresses once; DNS answers change later (rebinding),
and a relay runs inside the cluster. So, for an enforcing network plugin:

* relay pods may send only DNS queries to the cluster DNS pods, RTMP and status requests
  to their own LiveStream's ingest pod, and anything to addresses outside the denied
  ranges (settings: private, CGNAT, link-local, loopback, unique-local, and the cluster's
  pod and Service ranges). ``allow_private_destinations`` lifts the last limit: egress to
  anywhere, since that setting exists for destinations inside the cluster, and whether an
  ``ipBlock`` matches pod addresses is up to each enforcer (the API leaves it open);
* agent ports (relays', encoders', the ingest's) accept the operator's pods only (and,
  when set, the pods of the Prometheus that scrapes their /metrics); the ingest's also
  accepts its own LiveStream's relays and encoders, which long-poll it through the
  internal Service;
* rendition encoder pods may send only DNS queries, and RTMP (play the source, publish
  the rendition: both are connections the encoder opens) and status requests to their
  own LiveStream's ingest pod: nothing else, inside or outside the cluster;
* the ingest's RTMP port (and its RTMPS, SRT and HLS ports) accepts anyone: encoders and
  players come from outside the cluster. Ingest pods send nothing: nginx-rtmp asks its
  agent, and the agent reads nginx's statistics, on the pod's own loopback.

Traffic from the node itself (the kubelet's probes) is not for a NetworkPolicy to
allow: enforcers let a node reach its own pods. Both policies select pods by labels and
name no destination, so adding or changing a destination rewrites neither.
"""

from __future__ import annotations

import ipaddress

from .. import naming
from ..agent import contract
from ..settings import Settings
from . import common
from .common import Obj, Owner

API_VERSION = "networking.k8s.io/v1"
# Every namespace carries its name in this label (set by the API server since 1.22).
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
DNS_PORT = 53


def _tcp(*ports: int) -> list[Obj]:
    return [{"protocol": "TCP", "port": port} for port in ports]


def _udp(*ports: int) -> list[Obj]:
    return [{"protocol": "UDP", "port": port} for port in ports]


def _pods_in(namespace: str, labels: dict[str, str]) -> Obj:
    return {
        "namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: namespace}},
        "podSelector": {"matchLabels": dict(labels)},
    }


def _own_pods(owner: Owner, component: str) -> Obj:
    """A LiveStream's own ingest or relay pods (a peer in the policy's namespace)."""
    return {"podSelector": {"matchLabels": naming.selector(owner.name, component)}}


def operator_pods(settings: Settings) -> Obj:
    return _pods_in(settings.operator_namespace, settings.operator_pod_labels)


def agent_readers(settings: Settings) -> list[Obj]:
    """Who may read the agents' port: the operator's pods, and Prometheus' if set."""
    peers = [operator_pods(settings)]
    if settings.metrics_scraper_namespace:
        peers.append(
            _pods_in(settings.metrics_scraper_namespace, settings.metrics_scraper_pod_labels)
        )
    return peers


def denied_ranges(settings: Settings) -> dict[int, list[str]]:
    """IP version -> the ranges relays may not reach, merged (a pod range inside
    10.0.0.0/8 adds nothing) and sorted, so the rendering is stable."""
    cidrs = (*settings.egress_denied_cidrs, *settings.pod_cidrs, *settings.service_cidrs)
    networks = [ipaddress.ip_network(cidr) for cidr in cidrs]
    v4 = [n for n in networks if isinstance(n, ipaddress.IPv4Network)]
    v6 = [n for n in networks if isinstance(n, ipaddress.IPv6Network)]
    return {
        4: [str(n) for n in ipaddress.collapse_addresses(v4)],
        6: [str(n) for n in ipaddress.collapse_addresses(v6)],
    }


def public_addresses(settings: Settings) -> list[Obj]:
    """Peers for "any address but the denied ranges", IPv4 and IPv6."""
    peers = []
    denied_by_version = denied_ranges(settings)
    for version, everything in ((4, "0.0.0.0/0"), (6, "::/0")):
        block: Obj = {"cidr": everything}
        denied = denied_by_version[version]
        if denied:
            block["except"] = denied
        peers.append({"ipBlock": block})
    return peers


def _policy(owner: Owner, name: str, component: str, spec: Obj) -> Obj:
    return {
        "apiVersion": API_VERSION,
        "kind": "NetworkPolicy",
        "metadata": common.metadata(owner, name, naming.labels(owner.name, component)),
        "spec": {
            "podSelector": {"matchLabels": naming.selector(owner.name, component)},
            "policyTypes": ["Ingress", "Egress"],
            **spec,
        },
    }


def relays_policy(owner: Owner, settings: Settings) -> Obj:
    destinations: Obj = (
        {}  # any address, in the cluster too
        if settings.allow_private_destinations
        else {"to": public_addresses(settings)}
    )
    return _policy(
        owner,
        naming.relays_network_policy(owner.name),
        naming.COMPONENT_RELAY,
        {
            "ingress": [{"from": agent_readers(settings), "ports": _tcp(contract.AGENT_PORT)}],
            "egress": [
                _dns_egress(settings),
                {
                    "to": [_own_pods(owner, naming.COMPONENT_INGEST)],
                    "ports": _tcp(contract.RTMP_PORT, contract.AGENT_PORT),
                },
                destinations,
            ],
        },
    )


def _dns_egress(settings: Settings) -> Obj:
    return {
        "to": [_pods_in(settings.dns_namespace, settings.dns_pod_labels)],
        "ports": [
            {"protocol": "UDP", "port": DNS_PORT},
            {"protocol": "TCP", "port": DNS_PORT},
        ],
    }


def encoders_policy(owner: Owner, settings: Settings) -> Obj:
    return _policy(
        owner,
        naming.encoders_network_policy(owner.name),
        naming.COMPONENT_ENCODER,
        {
            "ingress": [{"from": agent_readers(settings), "ports": _tcp(contract.AGENT_PORT)}],
            "egress": [
                _dns_egress(settings),
                {
                    "to": [_own_pods(owner, naming.COMPONENT_INGEST)],
                    "ports": _tcp(contract.RTMP_PORT, contract.AGENT_PORT),
                },
            ],
        },
    )


def ingest_policy(owner: Owner, settings: Settings) -> Obj:
    served = owner.spec.ingest.serves
    media = [contract.RTMP_PORT] if served("RTMP") else []
    if owner.spec.playback.hls:
        media.append(contract.HLS_PORT)
    if served("RTMPS"):
        media.append(contract.RTMPS_PORT)  # RTMP_PROXY_PORT is localhost's only
    srt = [contract.SRT_PORT] if served("SRT") else []
    relays = _own_pods(owner, naming.COMPONENT_RELAY)
    encoders = _own_pods(owner, naming.COMPONENT_ENCODER)
    # Plain RTMP off for outside encoders: the relays and rendition encoders still play
    # (and publish renditions) over it.
    plays = (
        [] if served("RTMP") else [{"from": [relays, encoders], "ports": _tcp(contract.RTMP_PORT)}]
    )
    # No "egress" rules with Egress in policyTypes: the ingest sends nothing.
    return _policy(
        owner,
        naming.ingest_name(owner.name),
        naming.COMPONENT_INGEST,
        {
            "ingress": [
                # from anywhere: encoders, players
                {"ports": [*_tcp(*media), *_udp(*srt)]},
                {
                    "from": [*agent_readers(settings), relays, encoders],
                    "ports": _tcp(contract.AGENT_PORT),
                },
                *plays,
            ]
        },
    )


def network_policies(owner: Owner, settings: Settings) -> list[Obj]:
    return [
        ingest_policy(owner, settings),
        relays_policy(owner, settings),
        encoders_policy(owner, settings),
    ]
