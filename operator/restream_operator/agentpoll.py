"""Reading the agents' GET /status from the operator: bounded, short, never fatal.

An agent that does not answer within the timeout (a pod still starting, a network
policy, a simulated node) is simply absent from the result; status then falls back to
what the kubelet reports.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, cast

from . import naming
from .agent.contract import AGENT_PORT, PATH_STATUS, IngestAgentStatus, RelayAgentStatus
from .render import Owner
from .runtime import Runtime
from .views import PodView, live_pod

_MAX_BODY = 64 * 1024


async def fetch_json(host: str, port: int, path: str, timeout: float) -> dict[str, Any] | None:
    """A minimal HTTP/1.0 GET: the agents speak plain JSON over HTTP on the pod network."""
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port)
            try:
                writer.write(f"GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
                await writer.drain()
                raw = await reader.read(_MAX_BODY)
            finally:
                writer.close()
    except (OSError, TimeoutError):
        return None
    head, _, body = raw.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.") or head.split(b" ", 2)[1:2] != [b"200"]:
        return None
    try:
        doc = json.loads(body)
    except ValueError:
        return None
    return cast(dict[str, Any], doc) if isinstance(doc, dict) else None


async def _poll(runtime: Runtime, pod: PodView | None) -> dict[str, Any] | None:
    if pod is None or not pod.ip or pod.phase != "Running":
        return None
    async with runtime.poll_slots:
        return await fetch_json(
            pod.ip, AGENT_PORT, PATH_STATUS, runtime.settings.agent_timeout_seconds
        )


async def poll_agents(
    runtime: Runtime, owner: Owner, pods: dict[str, list[PodView]]
) -> tuple[IngestAgentStatus | None, dict[str, RelayAgentStatus]]:
    enabled = [r.name for r in owner.spec.restreams if r.enabled and not owner.spec.suspend]
    targets = [live_pod(pods.get("ingest", []))]
    targets += [live_pod(pods.get(naming.restream_slug(name), [])) for name in enabled]
    docs = await asyncio.gather(*(_poll(runtime, pod) for pod in targets))
    ingest = cast(IngestAgentStatus | None, docs[0])
    relays = {
        name: cast(RelayAgentStatus, doc)
        for name, doc in zip(enabled, docs[1:], strict=True)
        if doc is not None
    }
    return ingest, relays
