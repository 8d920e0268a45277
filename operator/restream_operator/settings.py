"""Operator settings, read once from the environment (the Helm chart sets them).

Every setting is an environment variable ``RESTREAM_<NAME>``; ``restream-operator run``
also takes the most common ones as flags. The README lists them all.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .models import MAX_RESTREAMS_CEILING
from .version import version

ENV_PREFIX = "RESTREAM_"
DEFAULT_MEDIA_IMAGE = f"restream-operator/media:{version()}"
# Where a relay must never connect, whatever a destination's name resolves to by then:
# private (RFC 1918), carrier-grade NAT, link-local (the cloud metadata address among
# them), loopback and unique-local addresses. The cluster's own pod and Service ranges
# are settings of their own (RESTREAM_POD_CIDRS, RESTREAM_SERVICE_CIDRS).
DEFAULT_EGRESS_DENIED_CIDRS = (
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "169.254.0.0/16",
    "127.0.0.0/8",
    "fc00::/7",
    "fe80::/10",
    "::1/128",
)
_DNS_LABEL = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
_DNS_SUBDOMAIN = r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?"
_SCALARS = (str, int, float, bool)  # read from the environment as they are; the rest is JSON


class SettingsError(ValueError):
    pass


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    max_restreams: int = Field(default=5, ge=1, le=MAX_RESTREAMS_CEILING)
    """Most destinations one LiveStream may have (RESTREAM_MAX_RESTREAMS)."""
    allow_private_destinations: bool = False
    """Allow destinations on loopback, private, link-local or cluster-internal addresses."""
    resolve_destinations: bool = True
    """Resolve destination hosts at admission for the SSRF guard (off where the operator
    has no DNS for external names; name-based checks still apply)."""
    ingest_image: str = DEFAULT_MEDIA_IMAGE
    """Image of the ingest pods (nginx-rtmp + restream-agent)."""
    relay_image: str = DEFAULT_MEDIA_IMAGE
    """Image of the relay pods (ffmpeg + restream-agent)."""
    image_pull_policy: str = Field(default="IfNotPresent", pattern="^(Always|IfNotPresent|Never)$")
    """Pull policy of the ingest and relay containers."""
    image_pull_secrets: list[str] = Field(default_factory=list)
    """Names of the image pull Secrets of every ingest and relay pod (JSON list in
    RESTREAM_IMAGE_PULL_SECRETS). A pod can only use Secrets of its own namespace: each
    must exist in every namespace that has LiveStreams."""
    media_image_container: str = Field(default="", pattern=f"^$|{_DNS_LABEL}")
    """The init container of the operator's own pod whose image is the media image (the
    chart's and deploy/'s "media-image"): the ingest and relay image is read from the
    pod at start, overriding ingest_image and relay_image, so that kustomize's `images:`
    (which rewrites container images, never environment variables) retags it. Empty:
    ingest_image and relay_image as set."""
    webhook_configuration_name: str = Field(
        default="restream-operator", pattern=f"^{_DNS_SUBDOMAIN}$"
    )
    """Name of the ValidatingWebhookConfiguration the operator registers: cluster-scoped,
    so one per installation (the chart: the release's name and namespace)."""
    agent_poll_seconds: float = Field(default=5.0, gt=0, le=300)
    """How often the operator reads the agents' /status and refreshes LiveStream status."""
    agent_timeout_seconds: float = Field(default=1.0, gt=0, le=30)
    """Timeout of one /status request to an agent."""
    agent_poll_concurrency: int = Field(default=32, ge=1, le=1024)
    """Agents polled at once, across all LiveStreams."""
    reconnect_min_delay_seconds: int = Field(default=1, ge=0, le=300)
    """Default first retry delay of relays (spec.relay.reconnect overrides it)."""
    reconnect_max_delay_seconds: int = Field(default=10, ge=1, le=300)
    """Default upper bound of the relays' retry delay."""
    cluster_domain: str = "cluster.local"
    """DNS suffix of in-cluster Service names."""
    pod_node_selector: dict[str, str] = Field(default_factory=dict)
    """nodeSelector of every ingest and relay pod (JSON in RESTREAM_POD_NODE_SELECTOR)."""
    pod_tolerations: list[dict[str, Any]] = Field(default_factory=list)
    """tolerations of every ingest and relay pod (JSON in RESTREAM_POD_TOLERATIONS)."""
    webhook_owner_clusterrole: str = ""
    """A ClusterRole that owns the webhook configurations, so that deleting it (helm
    uninstall) removes them too; empty: no owner."""
    operator_namespace: str = Field(default="restream-system", pattern=_DNS_LABEL)
    """Namespace of the operator's pods: the only pods (with the node's own traffic) that
    NetworkPolicies let reach the agents' port. The chart sets it to the release's."""
    operator_pod_labels: dict[str, str] = Field(
        default_factory=lambda: {"app.kubernetes.io/name": "restream-operator"}, min_length=1
    )
    """Labels that select the operator's pods (JSON in RESTREAM_OPERATOR_POD_LABELS)."""
    metrics_scraper_namespace: str = Field(default="", pattern=f"^$|{_DNS_LABEL}")
    """Namespace of the Prometheus pods that scrape the agents' /metrics: NetworkPolicies
    let them reach the agents' port too. Empty: only the operator's pods may."""
    metrics_scraper_pod_labels: dict[str, str] = Field(default_factory=dict)
    """Labels of those pods (JSON in RESTREAM_METRICS_SCRAPER_POD_LABELS); empty: every
    pod of that namespace."""
    pod_scrape_annotations: bool = False
    """prometheus.io/scrape, /port and /path annotations on the ingest and relay pods
    (for a Prometheus that discovers pods by them; changes every pod template)."""
    dns_namespace: str = Field(default="kube-system", pattern=_DNS_LABEL)
    """Namespace of the cluster DNS pods, the only DNS servers relays may ask."""
    dns_pod_labels: dict[str, str] = Field(
        default_factory=lambda: {"k8s-app": "kube-dns"}, min_length=1
    )
    """Labels of the cluster DNS pods (JSON in RESTREAM_DNS_POD_LABELS)."""
    egress_denied_cidrs: list[str] = Field(default_factory=lambda: [*DEFAULT_EGRESS_DENIED_CIDRS])
    """Address ranges relays may not connect to unless allow_private_destinations (JSON
    list in RESTREAM_EGRESS_DENIED_CIDRS)."""
    pod_cidrs: list[str] = Field(default_factory=list)
    """The cluster's pod ranges, denied to relays too (JSON list in RESTREAM_POD_CIDRS)."""
    service_cidrs: list[str] = Field(default_factory=list)
    """The cluster's Service ranges, denied to relays too (RESTREAM_SERVICE_CIDRS)."""
    defer_updates_while_broadcasting: bool = True
    """Keep a broadcasting LiveStream's pods as they are when the operator's own rendering
    of them changes (its version, image or settings): applied when the broadcast ends."""
    protect_live_pods: bool = True
    """A PodDisruptionBudget over a LiveStream's pods while it broadcasts, so that
    `kubectl drain` and other voluntary evictions wait for the broadcast to end."""

    @field_validator("egress_denied_cidrs", "pod_cidrs", "service_cidrs")
    @classmethod
    def _cidrs(cls, value: list[str]) -> list[str]:
        for cidr in value:
            try:
                network = ipaddress.ip_network(cidr)
            except ValueError as exc:
                raise ValueError(f"{cidr!r} is not a CIDR ({exc})") from None
            if network.prefixlen == 0:
                raise ValueError(f"{cidr!r} is every address: a relay could reach nothing")
        return value

    @field_validator("image_pull_secrets")
    @classmethod
    def _secret_names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not re.fullmatch(_DNS_SUBDOMAIN, name):
                raise ValueError(f"{name!r} is not a Secret name (a DNS subdomain)")
        return value

    @model_validator(mode="after")
    def _delays(self) -> Settings:
        if self.reconnect_min_delay_seconds > self.reconnect_max_delay_seconds:
            raise ValueError(
                "RESTREAM_RECONNECT_MIN_DELAY_SECONDS must not exceed "
                "RESTREAM_RECONNECT_MAX_DELAY_SECONDS"
            )
        return self

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        values: dict[str, Any] = {
            name: env[ENV_PREFIX + name.upper()]
            for name in cls.model_fields
            if ENV_PREFIX + name.upper() in env
        }
        for name, text in values.items():
            if cls.model_fields[name].annotation in _SCALARS:
                continue
            try:  # structured settings (maps, lists) are JSON
                values[name] = json.loads(text)
            except ValueError as exc:
                raise SettingsError(
                    f"invalid operator settings: {ENV_PREFIX}{name.upper()}: not JSON ({exc})"
                ) from None
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            problems = "; ".join(
                f"{ENV_PREFIX}{str(e['loc'][0]).upper() if e['loc'] else ''}: {e['msg']}"
                for e in exc.errors()
            )
            raise SettingsError(f"invalid operator settings: {problems}") from None
