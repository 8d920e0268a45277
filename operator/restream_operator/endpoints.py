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


def _url(
    owner: Owner, settings: Settings, internal: bool, scheme: str, port: int, path: str
) -> str:
    name = naming.ingest_internal_name if internal else naming.ingest_name
    return f"{scheme}://{service_host(owner, name(owner.name), settings)}:{port}{path}"


def play_url(owner: Owner, settings: Settings, rendition: str | None = None) -> str:
    """What relays (and encoders) play, without the token (the agent appends it from its
    environment): the source as published, or a rendition's encode."""
    stream = contract.STREAM_NAME if rendition is None else naming.rendition_stream(rendition)
    path = f"/{contract.APPLICATION}/{stream}"
    return _url(owner, settings, True, "rtmp", contract.RTMP_PORT, path)


def internal_publish_url(owner: Owner, settings: Settings) -> str:
    """Where encoders publish their renditions: the ingest's internal Service."""
    return _url(owner, settings, True, "rtmp", contract.RTMP_PORT, f"/{contract.APPLICATION}")


def publish_url(owner: Owner, settings: Settings) -> str:
    return _url(owner, settings, False, "rtmp", contract.RTMP_PORT, f"/{contract.APPLICATION}")


def rtmps_publish_url(owner: Owner, settings: Settings) -> str:
    """RTMPS: the ingest Service's name must be one the certificate is valid for."""
    return _url(owner, settings, False, "rtmps", contract.RTMPS_PORT, f"/{contract.APPLICATION}")


def srt_publish_url(owner: Owner, settings: Settings) -> str:
    """SRT, as OBS takes it: the passphrase (the stream key) is the encoder's to add."""
    return _url(owner, settings, False, "srt", contract.SRT_PORT, "")


def agent_status_url(owner: Owner, settings: Settings) -> str:
    return _url(owner, settings, True, "http", contract.AGENT_PORT, contract.PATH_STATUS)


def hls_url(owner: Owner, settings: Settings) -> str:
    path = f"/hls/{contract.STREAM_NAME}.m3u8"
    return _url(owner, settings, False, "http", contract.HLS_PORT, path)
