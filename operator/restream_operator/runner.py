"""`restream-operator run`: kopf with this operator's settings and handlers."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import socket
from collections.abc import Coroutine, Iterable, Mapping
from pathlib import Path
from typing import Any, cast

import kopf

from . import handlers, metrics, webhook
from .kube import FIELD_MANAGER, Kube, KubeError, load_config
from .runtime import Runtime
from .settings import Settings

PEERING_NAME = "restream-operator"
ANNOTATION_PREFIX = "restream.dev"


class NoDiffBase(kopf.DiffBaseStorage):
    """kopf's diff base, for change-detecting handlers, of which the operator has none
    (trigger.py reconciles by generation): kopf would still deep-copy every LiveStream
    on every watch event to build one (about 6% of the operator's CPU while 1,000
    LiveStreams converged), and never store it."""

    def build(
        self,
        *,
        body: kopf.Body,  # noqa: ARG002 (kopf's signature)
        extra_fields: Iterable[Any] | None = None,  # noqa: ARG002
    ) -> kopf.BodyEssence:
        return cast(kopf.BodyEssence, {})

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:  # noqa: ARG002
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        pass


def configure(settings: kopf.OperatorSettings) -> None:
    # Were kopf ever to keep progress (a daemon's, a timer's), in annotations under our
    # prefix: the CRD schema prunes undeclared status fields, and status belongs to
    # what the LiveStream *is*. Its handled-state (the diff base) is kept nowhere.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
        prefix=ANNOTATION_PREFIX
    )
    settings.persistence.diffbase_storage = NoDiffBase()
    # Events come from our own kopf.event() calls only (reconcile, status transitions),
    # under our name; kopf's "Handler ... succeeded" chatter stays in the log. Its
    # warnings and errors (a handler failing) still reach the object.
    settings.posting.level = logging.WARNING
    settings.posting.reporting_component = FIELD_MANAGER
    settings.posting.reporting_instance = socket.gethostname()
    settings.peering.name = PEERING_NAME
    settings.peering.mandatory = False
    # Reconnect watches promptly after an apiserver restart.
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330


class _QuietTrackers(logging.Filter):
    """Watch-event handlers succeed on every event: that is no news."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = str(record.msg)
        return not (msg.startswith("Handler 'track_") and msg.endswith(" succeeded."))


def build(
    settings: Settings,
    kube: Kube,
    plan: webhook.WebhookPlan | None = None,
    namespaces: tuple[str, ...] = (),
) -> tuple[kopf.OperatorRegistry, Runtime]:
    registry = kopf.OperatorRegistry()
    runtime = Runtime(settings=settings, kube=kube, namespaces=namespaces)

    @kopf.on.startup(registry=registry)
    async def _startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
        configure(settings)
        if plan is not None:
            webhook.install(settings, plan, memo)
            memo.webhook_publisher = asyncio.create_task(
                webhook.publish_when_listening(
                    kube,
                    plan,
                    runtime.settings.webhook_owner_clusterrole,
                    runtime.settings.webhook_configuration_name,
                    namespaces,
                )
            )

    @kopf.on.cleanup(registry=registry)
    async def _cleanup(memo: kopf.Memo, **_: Any) -> None:
        runtime.admission_pool.shutdown(wait=False, cancel_futures=True)
        if plan is None:
            return
        memo.webhook_publisher.cancel()
        if plan.remove_on_exit:
            await asyncio.to_thread(
                webhook.remove_configuration, kube, runtime.settings.webhook_configuration_name
            )
        shutil.rmtree(memo.get("webhook_tls_dir", ""), ignore_errors=True)

    # A registry of our own starts empty: bring kopf's usual login (in-cluster
    # ServiceAccount, else the kubeconfig) along.
    kopf.on.login(registry=registry)(kopf.login_via_client)

    handlers.register(registry)
    if plan is not None:
        webhook.register(registry)
    return registry, runtime


def webhook_plan(
    kube: Kube, mode: str, service: str, namespace: str, cert_dir: str
) -> webhook.WebhookPlan | None:
    if not mode:
        return None
    if mode.startswith("local:"):
        return webhook.local_plan(mode)
    if mode == "cluster":
        namespace = namespace or _own_namespace()
        return webhook.cluster_plan(kube, namespace, service, Path(cert_dir) if cert_dir else None)
    raise SystemExit(f"--webhook: expected '', 'local:HOST:PORT' or 'cluster', got {mode!r}")


def with_media_image_of_own_pod(settings: Settings, kube: Kube, env: Mapping[str, str]) -> Settings:
    """The ingest and relay image from the operator's own pod, when settings say which of
    its init containers carries it (the chart and deploy/ do). That container is where
    kustomize's `images:` and every image scanner see the media image; an environment
    variable would hide it from them. The pod is named by the downward API (POD_NAME)."""
    container = settings.media_image_container
    if not container:
        return settings
    pod_name = env.get("POD_NAME", "")
    namespace = env.get("POD_NAMESPACE", "") or settings.operator_namespace
    if not pod_name:
        raise SystemExit(
            f"RESTREAM_MEDIA_IMAGE_CONTAINER={container}: POD_NAME is not set; set it from "
            "the downward API (fieldRef metadata.name), or unset RESTREAM_MEDIA_IMAGE_CONTAINER "
            "and set RESTREAM_INGEST_IMAGE and RESTREAM_RELAY_IMAGE"
        )
    try:
        pod = kube.get("Pod", namespace, pod_name)
    except KubeError as exc:
        raise SystemExit(
            f"RESTREAM_MEDIA_IMAGE_CONTAINER={container}: cannot read the operator's own pod "
            f"{namespace}/{pod_name} ({exc}); its ServiceAccount needs `get pods` in {namespace}"
        ) from None
    spec = (pod or {}).get("spec", {})
    images = {
        c["name"]: c["image"] for c in spec.get("initContainers", []) + spec.get("containers", [])
    }
    if container not in images:
        raise SystemExit(
            f"RESTREAM_MEDIA_IMAGE_CONTAINER={container}: the pod {namespace}/{pod_name} has no "
            f"container {container!r} (it has: {', '.join(sorted(images)) or 'none'})"
        )
    return settings.model_copy(
        update={"ingest_image": images[container], "relay_image": images[container]}
    )


def _own_namespace() -> str:
    path = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
    if path.exists():
        return path.read_text().strip()
    raise SystemExit("--webhook cluster: pass --webhook-namespace (not running in a pod)")


def run(
    *,
    namespaces: list[str],
    standalone: bool,
    priority: int,
    liveness: str,
    webhook_mode: str,
    metrics: str = "",
    webhook_service: str = "restream-operator-webhook",
    webhook_namespace: str = "",
    webhook_cert_dir: str = "",
) -> int:
    settings = Settings.from_env()
    kopf.configure(log_format=kopf.LogFormat.JSON, verbose=False)
    logging.getLogger("kopf.objects").addFilter(_QuietTrackers())
    kube = Kube(load_config())
    settings = with_media_image_of_own_pod(settings, kube, os.environ)
    logging.getLogger(__name__).info(f"media image: {settings.relay_image}")
    plan = webhook_plan(kube, webhook_mode, webhook_service, webhook_namespace, webhook_cert_dir)
    if plan is not None and namespaces:
        try:  # refused now, not later in the task that registers the configuration
            webhook.namespace_selector(tuple(namespaces))
        except webhook.WebhookError as exc:
            raise SystemExit(str(exc)) from None
    registry, runtime = build(settings, kube, plan, tuple(namespaces))
    operator = kopf.operator(
        registry=registry,
        standalone=standalone,
        priority=priority,
        peering_name=PEERING_NAME,
        liveness_endpoint=liveness or None,
        clusterwide=not namespaces,
        namespaces=namespaces,
        memo=kopf.Memo(runtime=runtime),
    )
    asyncio.run(_with_metrics(operator, runtime, metrics))
    return 0


async def _with_metrics(
    operator: Coroutine[Any, Any, None], runtime: Runtime, address: str
) -> None:
    """kopf's operator, with /metrics served beside it (on the same event loop, where the
    gauges read the runtime) when ``address`` is set."""
    if not address:
        await operator
        return
    server = await metrics.serve(runtime, address)
    try:
        await operator
    finally:
        await server.cleanup()
