"""kopf handlers: thin wiring from Kubernetes events to the reconcile and status paths.

- create / update of spec / resume  -> ``reconcile`` (sync: kopf runs it in a thread)
- watch events of LiveStreams and of our Deployments, Pods, Services, NetworkPolicies and
  PodDisruptionBudgets -> the in-memory views in ``Runtime`` (no API request needed to
  compute a status, and a child someone else changed is noticed at once)
- startup -> the status loop (statusloop.py): poll agents, recompute, write on change.

Nothing here needs a finalizer: deleting a LiveStream, or its namespace, never waits for
the operator (owner references and the garbage collector remove the children).
The operator's in-memory state (``Runtime``) reaches every handler through kopf's memo.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import kopf

from . import models, naming, reconcile, statusloop
from .runtime import Runtime
from .views import deployment_view, key_of, pod_view, service_view, written_view

OURS = {naming.LABEL_MANAGED_BY: naming.MANAGED_BY}


# ---- in-memory views -------------------------------------------------------------------


async def track_livestream(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    runtime: Runtime = memo.runtime
    runtime.events.capture()  # for the status loop, which runs in no handler's context
    if type == "DELETED":
        runtime.forget(body.meta["uid"])
    else:
        runtime.remember(dict(body))


def _track(kind: str, type: str | None, obj: dict[str, Any], runtime: Runtime) -> None:
    key = key_of(obj)
    if key is None:
        return
    if type == "DELETED":
        runtime.child_deleted(key, kind, obj["metadata"]["name"])
        return
    if kind == "Deployment":
        runtime.child_changed(key, deployment_view(obj))
    elif kind == "Pod":
        runtime.child_changed(key, pod_view(obj))
        return  # the ReplicaSet's to write, not the operator's
    elif kind == "Service" and obj["metadata"]["name"] == naming.ingest_name(key[1]):
        # Only the public ingest Service has endpoints worth reporting.
        runtime.child_changed(key, service_view(obj))
    runtime.child_changed(key, written_view(kind, obj))


async def track_deployment(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    _track("Deployment", type, dict(body), memo.runtime)


async def track_pod(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    _track("Pod", type, dict(body), memo.runtime)


async def track_service(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    _track("Service", type, dict(body), memo.runtime)


async def track_network_policy(
    type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any
) -> None:
    _track("NetworkPolicy", type, dict(body), memo.runtime)


async def track_disruption_budget(
    type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any
) -> None:
    _track("PodDisruptionBudget", type, dict(body), memo.runtime)


# ---- reconcile -------------------------------------------------------------------------


def reconcile_livestream(body: kopf.Body, reason: str, memo: kopf.Memo, **_: Any) -> None:
    try:
        reconcile.reconcile(memo.runtime, dict(body), cause=str(reason))
    except reconcile.InvalidSpec as exc:
        raise kopf.PermanentError(str(exc)) from exc
    except reconcile.NameConflict as exc:
        raise kopf.TemporaryError(str(exc), delay=30) from exc
    except Exception as exc:
        raise kopf.TemporaryError(f"reconcile failed: {exc}", delay=5) from exc


# ---- the status loop ------------------------------------------------------------------


# What the views hold, by the kind kopf's watches deliver them as.
TRACKED_KINDS = ("Deployment", "Pod", "Service", "NetworkPolicy", "PodDisruptionBudget")


def prime_views(runtime: Runtime) -> None:
    """Fills the views with one paged LIST of each kind. Startup handlers run before
    kopf's watches start, so the status loop's first pass after a restart sees every
    child as it is, not as missing (which would write a status that says Pending and
    take it back a moment later); the watches' own listing, newer, follows."""
    for kind in TRACKED_KINDS:
        for namespace in runtime.namespaces or (None,):
            for page in runtime.kube.list_pages(kind, namespace, OURS):
                for obj in page:
                    _track(kind, None, obj, runtime)


async def start_status_loop(memo: kopf.Memo, **_: Any) -> None:
    await asyncio.to_thread(prime_views, memo.runtime)
    # Created inside kopf's context, so kopf.event() works from the loop.
    memo.status_loop = asyncio.create_task(statusloop.run(memo.runtime))


async def stop_status_loop(memo: kopf.Memo, **_: Any) -> None:
    task: asyncio.Task[None] | None = memo.get("status_loop")
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


# ---- registration ----------------------------------------------------------------------


def register(registry: kopf.OperatorRegistry) -> None:
    ls = (models.GROUP, models.VERSION, models.PLURAL)
    kopf.on.event(*ls, registry=registry)(track_livestream)
    kopf.on.event("apps", "v1", "deployments", labels=OURS, registry=registry)(track_deployment)
    kopf.on.event("", "v1", "pods", labels=OURS, registry=registry)(track_pod)
    kopf.on.event("", "v1", "services", labels=OURS, registry=registry)(track_service)
    kopf.on.event("networking.k8s.io", "v1", "networkpolicies", labels=OURS, registry=registry)(
        track_network_policy
    )
    kopf.on.event("policy", "v1", "poddisruptionbudgets", labels=OURS, registry=registry)(
        track_disruption_budget
    )
    for decorator in (
        kopf.on.resume(*ls, registry=registry),
        kopf.on.create(*ls, registry=registry),
        kopf.on.update(*ls, field="spec", registry=registry),
    ):
        decorator(reconcile_livestream)
    kopf.on.startup(registry=registry)(start_status_loop)
    kopf.on.cleanup(registry=registry)(stop_status_loop)
