"""kopf handlers: thin wiring from Kubernetes events to the reconcile and status paths.

- create / update of spec / resume  -> ``reconcile`` (sync: kopf runs it in a thread)
- watch events of LiveStreams and of our Deployments, Pods and Services -> the in-memory
  views in ``Runtime`` (no API request needed to compute a status)
- startup -> the status loop (statusloop.py): poll agents, recompute, write on change.

Nothing here needs a finalizer: deleting a LiveStream, or its namespace, never waits for
the operator (owner references and the garbage collector remove the children).
The operator's in-memory state (``Runtime``) reaches every handler through kopf's memo.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import kopf

from . import models, naming, statusloop
from .reconcile import TooManyRestreams, reconcile
from .render import owner_from_object
from .runtime import Runtime
from .views import deployment_view, key_of, pod_group, pod_view, service_view

OURS = {naming.LABEL_MANAGED_BY: naming.MANAGED_BY}


# ---- in-memory views -------------------------------------------------------------------


async def track_livestream(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    runtime: Runtime = memo.runtime
    uid = body.meta["uid"]
    if type == "DELETED":
        runtime.forget(uid)
    else:
        runtime.livestreams[uid] = dict(body)


async def track_deployment(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    key = key_of(dict(body))
    if key is None:
        return
    views = memo.runtime.views(key).deployments
    if type == "DELETED":
        views.pop(body.meta["name"], None)
    else:
        views[body.meta["name"]] = deployment_view(dict(body))


async def track_pod(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    key = key_of(dict(body))
    if key is None:
        return
    views = memo.runtime.views(key).pods
    if type == "DELETED":
        views.pop(body.meta["name"], None)
    else:
        views[body.meta["name"]] = (pod_group(dict(body)), pod_view(dict(body)))


async def track_service(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    key = key_of(dict(body))
    if key is None or body.meta["name"] != naming.ingest_name(key[1]):
        return  # only the public ingest Service has endpoints worth reporting
    memo.runtime.views(key).service = None if type == "DELETED" else service_view(dict(body))


# ---- reconcile -------------------------------------------------------------------------


def reconcile_livestream(body: kopf.Body, logger: kopf.Logger, memo: kopf.Memo, **_: Any) -> None:
    runtime: Runtime = memo.runtime
    owner = owner_from_object(dict(body))
    state = runtime.stream(owner.uid)
    try:
        outcome = reconcile(owner, runtime.settings, runtime.kube)
    except TooManyRestreams as exc:
        state.reconcile_error = str(exc)
        kopf.warn(body, reason="TooManyRestreams", message=str(exc))
        raise kopf.PermanentError(str(exc)) from exc
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


# ---- the status loop ------------------------------------------------------------------


async def start_status_loop(memo: kopf.Memo, **_: Any) -> None:
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
    for decorator in (
        kopf.on.resume(*ls, registry=registry),
        kopf.on.create(*ls, registry=registry),
        kopf.on.update(*ls, field="spec", registry=registry),
    ):
        decorator(reconcile_livestream)
    kopf.on.startup(registry=registry)(start_status_loop)
    kopf.on.cleanup(registry=registry)(stop_status_loop)
