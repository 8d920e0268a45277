"""Where a LiveStream's ingest is reached from inside the cluster: the URLs encoders
publish to, relays play from, and the HLS player and the relays' long poll read.

Both the builders (pod arguments) and the status (``status.ingest``) use these, so what
a pod is told and what a person is shown cannot differ.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import naming
from .agent import contract
from .settings import Settings

if TYPE_CHECKING:
    from .render.common import Owner


def service_host(owner: Owner, service: str, settings: Settings) -> str:
    return f"{service}.{owner.namespace}.svc.{settings.cluster_domain}"


def play_url(owner: Owner, settings: Settings) -> str:
    """What relays play, without the token (the agent appends it from its environment)."""
    host = service_host(owner, naming.ingest_internal_name(owner.name), settings)
    return f"rtmp://{host}:{contract.RTMP_PORT}/{contract.APPLICATION}/{contract.STREAM_NAME}"


def publish_url(owner: Owner, settings: Settings) -> str:
    host = service_host(owner, naming.ingest_name(owner.name), settings)
    return f"rtmp://{host}:{contract.RTMP_PORT}/{contract.APPLICATION}"


def agent_status_url(owner: Owner, settings: Settings) -> str:
    host = service_host(owner, naming.ingest_internal_name(owner.name), settings)
    return f"http://{host}:{contract.AGENT_PORT}{contract.PATH_STATUS}"


def hls_url(owner: Owner, settings: Settings) -> str:
    host = service_host(owner, naming.ingest_name(owner.name), settings)
    return f"http://{host}:{contract.HLS_PORT}/hls/{contract.STREAM_NAME}.m3u8"
