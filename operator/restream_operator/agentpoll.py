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


def _due(
    runtime: Runtime, namespace: str, pod: PodView | None, port: int, backoff: bool
) -> str | None:
    """The URL to ask now, or None: the pod has no address yet, or its agent did not
    answer lately and waits (the same pod: a changed one is asked at once)."""
    url = _status_url(pod, port)
    if url is None or pod is None:
        return None
    if backoff:
        known = runtime.unreachable.get((namespace, pod.name))
        if known is not None and known.pod == pod and time.monotonic() < known.next_poll:
            return None
    return url


async def _poll(
    runtime: Runtime, namespace: str, pod: PodView, url: str, backoff: bool
) -> dict[str, Any] | None:
    metrics.AGENT_POLLS.labels("relay" if backoff else "ingest").inc()
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
        known = None  # the pod changed: its failures so far do not count
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


async def _ask(
    runtime: Runtime, namespace: str, pods: list[tuple[PodView | None, bool]], port: int
) -> list[dict[str, Any] | None]:
    """Each agent's /status (None: not asked, or no answer), in the order of ``pods``:
    (the pod, whether its agent backs off when it does not answer). Only the agents due
    are asked, in one gather: a task per agent, due or not, and a gather per kind of
    agent, were most of the status loop's CPU at 1,000 LiveStreams."""
    out: list[dict[str, Any] | None] = [None] * len(pods)
    due = [
        (i, pod, url, backoff)
        for i, (pod, backoff) in enumerate(pods)
        if pod is not None and (url := _due(runtime, namespace, pod, port, backoff)) is not None
    ]
    if len(due) == 1:
        i, pod, url, backoff = due[0]
        out[i] = await _poll(runtime, namespace, pod, url, backoff)
    elif due:
        docs = await asyncio.gather(*(_poll(runtime, namespace, *d[1:]) for d in due))
        for (i, *_), doc in zip(due, docs, strict=True):
            out[i] = doc
    return out


async def poll_all(
    runtime: Runtime, owner: Owner, pods: dict[str, list[PodView]], port: int = AGENT_PORT
) -> tuple[IngestAgentStatus | None, dict[str, RelayAgentStatus], dict[str, RelayAgentStatus]]:
    """The /status of one LiveStream's agents: its ingest's, its enabled relays' (by
    restream name) and its rendition encoders' in use (by rendition name). One that
    does not answer is absent. ``port``: every agent's, AGENT_PORT in a cluster.

    The ingest's agent is asked every interval: whether a broadcast is on decides what
    the operator may replace. The others are asked less often while they do not answer.
    """
    suspended = owner.spec.suspend
    relays = [r.name for r in owner.spec.restreams if r.enabled and not suspended]
    encoders = [] if suspended else [r.name for r in encoder.in_use(owner.spec)]
    asked = [
        (live_pod(pods.get("ingest", [])), False),
        *((live_pod(pods.get(naming.restream_slug(n), [])), True) for n in relays),
        *((live_pod(pods.get(naming.encoder_group(n), [])), True) for n in encoders),
    ]
    ingest, *docs = await _ask(runtime, owner.namespace, asked, port)
    relay_docs, encoder_docs = docs[: len(relays)], docs[len(relays) :]
    by_relay = {
        n: cast(RelayAgentStatus, d)
        for n, d in zip(relays, relay_docs, strict=True)
        if d is not None
    }
    by_encoder = {
        n: cast(RelayAgentStatus, d)
        for n, d in zip(encoders, encoder_docs, strict=True)
        if d is not None
    }
    return cast(IngestAgentStatus | None, ingest), by_relay, by_encoder


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
