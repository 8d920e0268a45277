"""`restream-operator run`: kopf with this operator's settings and handlers."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf

from . import handlers
from .kube import Kube, load_config
from .runtime import Runtime
from .settings import Settings

PEERING_NAME = "restream-operator"
ANNOTATION_PREFIX = "restream.dev"


def configure(settings: kopf.OperatorSettings) -> None:
    # Keep kopf's bookkeeping in annotations under our prefix: the CRD schema prunes
    # undeclared status fields, and status belongs to what the LiveStream *is*.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
        prefix=ANNOTATION_PREFIX
    )
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=ANNOTATION_PREFIX, key="last-handled-configuration"
    )
    settings.posting.level = logging.INFO
    settings.peering.name = PEERING_NAME
    settings.peering.mandatory = False
    # Reconnect watches promptly after an apiserver restart.
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.execution.max_workers = 16


class _QuietTrackers(logging.Filter):
    """Watch-event handlers succeed on every event: that is no news."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = str(record.msg)
        return not (msg.startswith("Handler 'track_") and msg.endswith(" succeeded."))


def build(settings: Settings, kube: Kube) -> tuple[kopf.OperatorRegistry, Runtime]:
    registry = kopf.OperatorRegistry()
    runtime = Runtime(settings=settings, kube=kube)

    @kopf.on.startup(registry=registry)
    def _startup(settings: kopf.OperatorSettings, **_: Any) -> None:
        configure(settings)

    # A registry of our own starts empty: bring kopf's usual login (in-cluster
    # ServiceAccount, else the kubeconfig) along.
    kopf.on.login(registry=registry)(kopf.login_via_client)

    handlers.register(registry)
    return registry, runtime


def run(
    *,
    namespaces: list[str],
    standalone: bool,
    priority: int,
    liveness: str,
    webhook: str,
) -> int:
    settings = Settings.from_env()
    kopf.configure(log_format=kopf.LogFormat.JSON, verbose=False)
    logging.getLogger("kopf.objects").addFilter(_QuietTrackers())
    registry, runtime = build(settings, Kube(load_config()))
    if webhook:
        raise SystemExit("admission webhooks arrive with issue #5")
    asyncio.run(
        kopf.operator(
            registry=registry,
            standalone=standalone,
            priority=priority,
            peering_name=PEERING_NAME,
            liveness_endpoint=liveness or None,
            clusterwide=not namespaces,
            namespaces=namespaces,
            memo=kopf.Memo(runtime=runtime),
        )
    )
    return 0
