"""Reading the agents' GET /status from the operator: bounded, short, never fatal.

An agent that does not answer within the timeout (a pod still starting, a network
policy, a simulated node) is simply absent from the result; status then falls back to
what the kubelet reports.

A relay's agent that keeps not answering while its pod stays as it was is asked less often:
after its k-th failure in a row, not before k poll intervals have passed (at most
``UNREACHABLE_MAX_INTERVALS``). Its pod is Ready, so the kubelet reaches the agent
and the operator does not: a network policy or a broken path, which polling every
interval does not mend. Each such poll holds one of the bounded poll slots for up to
the timeout, so a namespace whose policy drops the operator's packets would otherwise
delay every other LiveStream's status. Any change of the pod (ready, restarted, a new
address) is a new PodView and is asked at once. The ingest's agent is asked every
interval regardless: its answer says whether a broadcast is on, which decides what the
operator may replace, and it is one agent in four at most.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, cast

from . import httpclient, metrics, naming
from .agent.contract import AGENT_PORT, PATH_STATUS, IngestAgentStatus, RelayAgentStatus
from .render import Owner, encoder
from .runtime import Runtime, Unreachable
from .views import PodView, live_pod


def _status_url(pod: PodView | None, port: int) -> str | None:
    """Where a pod's agent answers, if it can: running, with an address."""
    if pod is None or not pod.ip or pod.phase != "Running":
        return None
    return httpclient.url(pod.ip, port, PATH_STATUS)


# The longest wait between polls of an agent that does not answer, in poll intervals.
UNREACHABLE_MAX_INTERVALS = 4


async def _poll(
    runtime: Runtime, namespace: str, pod: PodView | None, port: int, backoff: bool = True
) -> dict[str, Any] | None:
    url = _status_url(pod, port)
    if url is None or pod is None:
        return None
    if not backoff:
        async with runtime.poll_slots:
            try:
                return await httpclient.get_json(url, runtime.settings.agent_timeout_seconds)
            except (OSError, TimeoutError):
                metrics.AGENT_POLL_FAILURES.labels("ingest").inc()
        return None
    key = (namespace, pod.name)
    known = runtime.unreachable.get(key)
    if known is not None and known.pod != pod:
        known = None  # the pod changed: ask now
    if known is not None and time.monotonic() < known.next_poll:
        return None
    async with runtime.poll_slots:
        try:
            doc = await httpclient.get_json(url, runtime.settings.agent_timeout_seconds)
        except (OSError, TimeoutError):
            metrics.AGENT_POLL_FAILURES.labels("relay").inc()
            failures = (known.failures if known else 0) + 1
            wait = min(failures, UNREACHABLE_MAX_INTERVALS) * runtime.settings.agent_poll_seconds
            # A little early: the pass that comes one interval later must find it due.
            due = time.monotonic() + wait - runtime.settings.agent_poll_seconds / 2
            runtime.unreachable[key] = Unreachable(pod, failures, due)
            return None
    runtime.unreachable.pop(key, None)
    return doc


async def poll_agents(
    runtime: Runtime, owner: Owner, pods: dict[str, list[PodView]], port: int = AGENT_PORT
) -> tuple[IngestAgentStatus | None, dict[str, RelayAgentStatus]]:
    """The agents' /status of one LiveStream's ingest and enabled relays; an agent that
    does not answer is absent. ``port``: every agent's, AGENT_PORT in a cluster."""
    enabled = [r.name for r in owner.spec.restreams if r.enabled and not owner.spec.suspend]
    relays_pods = [live_pod(pods.get(naming.restream_slug(name), [])) for name in enabled]
    ingest_doc, *docs = await asyncio.gather(
        _poll(runtime, owner.namespace, live_pod(pods.get("ingest", [])), port, backoff=False),
        *(_poll(runtime, owner.namespace, pod, port) for pod in relays_pods),
    )
    ingest = cast(IngestAgentStatus | None, ingest_doc)
    relays = {
        name: cast(RelayAgentStatus, doc)
        for name, doc in zip(enabled, docs, strict=True)
        if doc is not None
    }
    return ingest, relays


async def poll_encoders(
    runtime: Runtime, owner: Owner, pods: dict[str, list[PodView]], port: int = AGENT_PORT
) -> dict[str, RelayAgentStatus]:
    """The /status of each rendition encoder in use, by rendition name; one that does
    not answer is absent (asked less often, like a relay's)."""
    if owner.spec.suspend:
        return {}
    names = [r.name for r in encoder.in_use(owner.spec)]
    docs = await asyncio.gather(
        *(
            _poll(runtime, owner.namespace, live_pod(pods.get(naming.encoder_group(n), [])), port)
            for n in names
        )
    )
    return {
        name: cast(RelayAgentStatus, doc)
        for name, doc in zip(names, docs, strict=True)
        if doc is not None
    }


def publishing_now(runtime: Runtime, owner: Owner) -> bool | None:
    """Asks the ingest agent, from a worker thread, whether an encoder publishes right
    now; None when it does not answer. For the moment before a rollout, where an answer
    up to a poll interval old is not good enough."""
    pods = runtime.views((owner.namespace, owner.name)).pods_by_group()
    url = _status_url(live_pod(pods.get("ingest", [])), AGENT_PORT)
    if url is None:
        return None
    try:
        doc = asyncio.run(httpclient.get_json(url, runtime.settings.agent_timeout_seconds))
    except (OSError, TimeoutError):
        return None
    return bool(doc.get("publishing"))
