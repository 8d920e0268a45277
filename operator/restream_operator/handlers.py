"""kopf handlers: thin wiring from Kubernetes events to the reconcile and status paths.

- create / update of spec / resume  -> ``reconcile`` (sync: kopf runs it in a thread)
- a timer per LiveStream            -> poll the agents, recompute status, write it only
                                       when it changed, post Events on transitions,
                                       repair children that went missing
- indexes of our Deployments, Pods and Services: in-memory views the timer reads, so a
  status refresh costs no API request at all.

The operator's in-memory state (``Runtime``) reaches every handler through kopf's memo.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import Any

import kopf

from . import models, naming
from .agentpoll import poll_agents
from .reconcile import missing_secrets, reconcile
from .render import Owner, owner_from_object, render_children
from .runtime import Runtime, StreamState
from .status import (
    STATUS_KEYS,
    DeploymentView,
    Observed,
    PodView,
    ServiceView,
    compute_status,
    transitions,
)

OURS = {naming.LABEL_MANAGED_BY: naming.MANAGED_BY}
# A child still missing this long after the last reconcile gets recreated.
REPAIR_AFTER_SECONDS = 10.0

IndexKey = tuple[str, str]  # (namespace, livestream name)


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _key(namespace: str | None, labels: kopf.Labels) -> IndexKey | None:
    livestream = labels.get(naming.LABEL_LIVESTREAM)
    return (namespace or "", livestream) if livestream else None


# ---- indexes ---------------------------------------------------------------------------


def index_deployment(
    namespace: str | None, name: str, labels: kopf.Labels, body: kopf.Body, **_: Any
) -> dict[IndexKey, DeploymentView] | None:
    key = _key(namespace, labels)
    if key is None:
        return None
    spec, status = body.get("spec", {}), body.get("status", {})
    replicas = int(spec.get("replicas", 1))
    seen = int(status.get("observedGeneration") or 0) >= int(body.meta.get("generation") or 0)
    return {
        key: DeploymentView(
            name=name,
            replicas=replicas,
            available=int(status.get("availableReplicas") or 0),
            rolled_out=seen and int(status.get("updatedReplicas") or 0) >= replicas,
        )
    }


def index_pod(
    namespace: str | None, name: str, labels: kopf.Labels, body: kopf.Body, **_: Any
) -> dict[IndexKey, tuple[str, PodView]] | None:
    key = _key(namespace, labels)
    if key is None:
        return None
    status = body.get("status", {})
    conditions = {c.get("type"): c for c in status.get("conditions") or []}
    ready = conditions.get("Ready") or {}
    containers = status.get("containerStatuses") or []
    waiting: dict[str, Any] = next(
        (c["state"]["waiting"] for c in containers if (c.get("state") or {}).get("waiting")), {}
    )
    group = labels.get(naming.LABEL_RESTREAM) or labels.get(naming.LABEL_COMPONENT) or ""
    view = PodView(
        name=name,
        ip=status.get("podIP"),
        phase=status.get("phase") or "Pending",
        ready=ready.get("status") == "True",
        ready_since=ready.get("lastTransitionTime"),
        restarts=sum(int(c.get("restartCount") or 0) for c in containers),
        waiting_reason=waiting.get("reason"),
        waiting_message=waiting.get("message"),
        deleting=body.meta.get("deletionTimestamp") is not None,
    )
    return {key: (group, view)}


def index_service(
    namespace: str | None, name: str, labels: kopf.Labels, body: kopf.Body, **_: Any
) -> dict[IndexKey, ServiceView] | None:
    key = _key(namespace, labels)
    if key is None or name != naming.ingest_name(key[1]):
        return None  # only the public ingest Service has endpoints worth reporting
    spec, status = body.get("spec", {}), body.get("status", {})
    ingress = (status.get("loadBalancer") or {}).get("ingress") or [{}]
    node_ports = [p.get("nodePort") for p in spec.get("ports") or [] if p.get("name") == "rtmp"]
    return {
        key: ServiceView(
            type=spec.get("type", "ClusterIP"),
            load_balancer_host=ingress[0].get("hostname") or ingress[0].get("ip"),
            node_port=node_ports[0] if node_ports else None,
        )
    }


# ---- reconcile -------------------------------------------------------------------------


def reconcile_livestream(body: kopf.Body, logger: kopf.Logger, memo: kopf.Memo, **_: Any) -> None:
    runtime: Runtime = memo.runtime
    owner = owner_from_object(dict(body))
    state = runtime.stream(owner.uid)
    try:
        outcome = reconcile(owner, runtime.settings, runtime.kube)
    except Exception as exc:
        state.reconcile_error = f"reconcile failed: {exc}"
        raise kopf.TemporaryError(state.reconcile_error, delay=5) from exc
    state.reconcile_error = None
    state.reconciled_generation = int(body.meta.get("generation") or 0)
    state.reconciled_at = time.monotonic()
    state.missing_secrets = tuple(outcome.missing_secrets)
    for ref in outcome.created:
        logger.info(f"created {ref}")
    for ref in outcome.deleted:
        kopf.info(body, reason="Deleted", message=f"deleted {ref}")
    if outcome.missing_secrets:
        kopf.warn(body, reason="SecretMissing", message="; ".join(outcome.missing_secrets))
    logger.info(
        f"reconciled generation {state.reconciled_generation}: "
        f"{len(outcome.applied)} applied, {len(outcome.deleted)} deleted"
    )


def forget_livestream(uid: str, memo: kopf.Memo, **_: Any) -> None:
    memo.runtime.forget(uid)


# ---- status ----------------------------------------------------------------------------


async def refresh_status(
    body: kopf.Body,
    patch: kopf.Patch,
    logger: kopf.Logger,
    memo: kopf.Memo,
    index_deployment: kopf.Index[IndexKey, DeploymentView],
    index_pod: kopf.Index[IndexKey, tuple[str, PodView]],
    index_service: kopf.Index[IndexKey, ServiceView],
    **_: Any,
) -> None:
    runtime: Runtime = memo.runtime
    owner = owner_from_object(dict(body))
    key = (owner.namespace, owner.name)
    state = runtime.stream(owner.uid)
    deployments = {d.name: d for d in index_deployment.get(key, [])}
    pods: dict[str, list[PodView]] = {}
    for group, pod in index_pod.get(key, []):
        pods.setdefault(group, []).append(pod)

    generation = int(body.meta.get("generation") or 0)
    if state.reconciled_generation == generation:
        await _repair_if_needed(runtime, owner, deployments, state, logger)
        if state.missing_secrets:  # recheck: the Secret may have been created since
            state.missing_secrets = tuple(
                await asyncio.to_thread(missing_secrets, owner, runtime.kube)
            )

    ingest_doc, relay_docs = await poll_agents(runtime, owner, pods)
    observed = Observed(
        deployments=deployments,
        pods=pods,
        service=next(iter(index_service.get(key, [])), None),
        ingest_agent=ingest_doc,
        relay_agents=relay_docs,
        missing_secrets=state.missing_secrets,
        reconciled_generation=state.reconciled_generation,
        reconcile_error=state.reconcile_error,
    )
    previous = dict(body.status)
    new = compute_status(owner, generation, previous, observed, runtime.settings, _now())
    changed = {k: v for k, v in new.items() if previous.get(k) != v}
    removed = [k for k in STATUS_KEYS if k in previous and k not in new]
    if not changed and not removed:
        return  # nothing changed: no write, no churn
    for k, v in changed.items():
        patch.status[k] = v
    for k in removed:
        patch.status[k] = None
    for t in transitions(previous, new):
        kopf.event(body, type=t.type, reason=t.reason, message=t.message)


async def _repair_if_needed(
    runtime: Runtime,
    owner: Owner,
    deployments: dict[str, DeploymentView],
    state: StreamState,
    logger: kopf.Logger,
) -> None:
    if time.monotonic() - state.reconciled_at < REPAIR_AFTER_SECONDS:
        return
    expected = set(render_children(owner, runtime.settings).relays.values())
    expected.add(naming.ingest_name(owner.name))
    missing = sorted(expected - set(deployments))
    if not missing:
        return
    logger.warning(f"children missing, reconciling again: {', '.join(missing)}")
    state.reconciled_at = time.monotonic()
    try:
        await asyncio.to_thread(reconcile, owner, runtime.settings, runtime.kube)
    except Exception as exc:  # the next tick tries again
        logger.error(f"repair failed: {exc}")


# ---- registration ----------------------------------------------------------------------


def register(registry: kopf.OperatorRegistry, poll_seconds: float) -> None:
    """Registers every handler. (kopf's TimerFn protocol does not admit index kwargs,
    hence the one type: ignore.)"""
    ls = (models.GROUP, models.VERSION, models.PLURAL)
    kopf.index("apps", "v1", "deployments", labels=OURS, registry=registry)(index_deployment)
    kopf.index("", "v1", "pods", labels=OURS, registry=registry)(index_pod)
    kopf.index("", "v1", "services", labels=OURS, registry=registry)(index_service)
    for decorator in (
        kopf.on.resume(*ls, registry=registry),
        kopf.on.create(*ls, registry=registry),
        kopf.on.update(*ls, field="spec", registry=registry),
    ):
        decorator(reconcile_livestream)
    kopf.on.delete(*ls, optional=True, registry=registry)(forget_livestream)
    kopf.timer(
        *ls,
        interval=poll_seconds,
        initial_delay=min(1.0, poll_seconds),
        registry=registry,
    )(refresh_status)  # type: ignore[arg-type]
