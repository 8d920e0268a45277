"""Operator settings, read once from the environment (the Helm chart sets them).

Every setting is an environment variable ``RESTREAM_<NAME>``; ``restream-operator run``
also takes the most common ones as flags. The README lists them all.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from . import __version__
from .models import MAX_RESTREAMS_CEILING

ENV_PREFIX = "RESTREAM_"
DEFAULT_MEDIA_IMAGE = f"restream-operator/media:{__version__}"


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
        for name in ("pod_node_selector", "pod_tolerations"):  # structured: JSON
            if name in values:
                try:
                    values[name] = json.loads(values[name])
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
