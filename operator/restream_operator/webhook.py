"""The validating admission webhook: kopf's handler, served over TLS.

The rules themselves are in the admission package (one rule set, also used by
`restream-operator validate`). This module wires them into kopf, serves them, and keeps
the webhook configuration pointing at the server with the right CA bundle:

- local (`--webhook local:127.0.0.1:PORT`): a URL on loopback, a CA made at start; the
  configuration is removed again when the operator stops (a leftover configuration
  would block every LiveStream write).
- cluster (`--webhook cluster`): the operator's Service; the certificate from a mounted
  directory (cert-manager) or made once and kept in a Secret, reused across restarts.

failurePolicy and timeouts (see README, "Admission"): the webhook fails closed (Fail,
5 s): the SSRF guard and the destination limit must not be skipped by taking the
operator down, and without the operator nothing would reconcile anyway. Reviews run on
the runtime's own threads, so that nothing else the operator waits for can make one
miss those 5 s.

There is no mutating webhook: the API server applies the CRD schema's defaults itself,
before any admission webhook runs. Earlier versions registered one (failurePolicy
Ignore, so harmless); it is deleted once the validating configuration is in place.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import logging
import re
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kopf

from . import admission, metrics, models
from .certs import ServingCert, issue_serving_cert
from .kube import Kube, KubeError
from .runtime import Runtime

log = logging.getLogger(__name__)

VALIDATE_ID = "validate"
CONFIGURATION_NAME = "restream-operator"
VALIDATE_TIMEOUT_SECONDS = 5
# Which requests reach the webhook at all: a create, and an update that changes the spec.
# An update of metadata only (kopf's own annotation, a GitOps tool's labels) can break
# no rule the review checks (name and namespace cannot change), so the API server does
# not ask: at 1,000 new LiveStreams that is 1,000 reviews fewer (admission.review on
# such an update allows it anyway). A spec present on one side only counts as changed.
SPEC_CHANGED = (
    "request.operation != 'UPDATE' || !has(object.spec) || !has(oldObject.spec)"
    " || object.spec != oldObject.spec"
)
NAMESPACE_NAME = r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"
# The port the webhook server listens on in the operator's pod: the API server connects
# to it directly (through the Service's targetPort), which is why a cloud firewall between
# the control plane and the nodes must let it through (README).
CLUSTER_PORT = 9443
SERVICE_PORT = 443


class WebhookError(ValueError):
    """A webhook setting that cannot work, said with the fix."""


# ---- handlers ----------------------------------------------------------------------


async def validate_livestream(
    body: kopf.Body,
    warnings: list[str],
    memo: kopf.Memo,
    userinfo: Mapping[str, Any],
    **kwargs: Any,
) -> None:
    started = time.monotonic()
    verdict = "error"
    try:
        await _validate(body, warnings, memo.runtime, userinfo, kwargs.get("old"))
        verdict = "allowed"
    except kopf.AdmissionError:
        verdict = "denied"
        raise
    finally:
        metrics.WEBHOOK_REVIEWS.labels(verdict).inc()
        metrics.WEBHOOK_DURATION.observe(time.monotonic() - started)


async def _validate(
    body: kopf.Body,
    warnings: list[str],
    runtime: Runtime,
    userinfo: Mapping[str, Any],
    old: Any,
) -> None:
    # old: the stored object, on UPDATE
    namespace = body.metadata.get("namespace")
    # Always asked: kopf refuses a request without userInfo, and none may skip the check.
    access = runtime.access_reviews.of(admission.Requester.from_user_info(userinfo))
    check = functools.partial(
        admission.review,
        dict(body),
        runtime.settings,
        old=dict(old) if old else None,
        namespace=namespace,
        secrets=runtime.secret_cache.lookup if namespace else None,
        access=access,
        resolver=runtime.resolver if runtime.settings.resolve_destinations else None,
    )
    # In a thread: DNS lookups and Secret reads block (briefly, and both are bounded).
    result = await asyncio.get_running_loop().run_in_executor(runtime.admission_pool, check)
    # The apiserver keeps warnings short and few: say each one once, briefly.
    warnings.extend(str(w)[:256] for w in result.warnings[:10])
    if not result.allowed:
        raise kopf.AdmissionError(result.message(), code=422)


def register(registry: kopf.OperatorRegistry) -> None:
    ls = (models.GROUP, models.VERSION, models.PLURAL)
    kopf.on.validate(*ls, id=VALIDATE_ID, operations=["CREATE", "UPDATE"], registry=registry)(
        validate_livestream
    )


# ---- configurations ----------------------------------------------------------------


def webhook_configuration(
    client_config: dict[str, Any],
    ca: bytes,
    name: str = CONFIGURATION_NAME,
    namespaces: tuple[str, ...] = (),
) -> dict[str, Any]:
    """The validating configuration for a client config (url or service) whose path (url
    or service.path) is the server's root. With namespaces (the operator watches only
    those), the API server asks this webhook about LiveStreams there only: another
    installation's webhook answers for its own namespaces, with its own settings."""
    cfg = dict(client_config)
    if "url" in cfg:
        cfg["url"] = f"{cfg['url'].rstrip('/')}/{VALIDATE_ID}"
    else:
        cfg["service"] = {**cfg["service"], "path": f"/{VALIDATE_ID}"}
    cfg["caBundle"] = base64.b64encode(ca).decode()
    hook: dict[str, Any] = {
        "name": f"{VALIDATE_ID}.{models.PLURAL}.{models.GROUP}",
        "clientConfig": cfg,
        "failurePolicy": "Fail",
        "timeoutSeconds": VALIDATE_TIMEOUT_SECONDS,
        "matchPolicy": "Equivalent",
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
        "matchConditions": [{"name": "spec-changed", "expression": SPEC_CHANGED}],
        "rules": [
            {
                "apiGroups": [models.GROUP],
                "apiVersions": [models.VERSION],
                "resources": [models.PLURAL],
                "operations": ["CREATE", "UPDATE"],
                "scope": "Namespaced",
            }
        ],
    }
    if namespaces:
        hook["namespaceSelector"] = namespace_selector(namespaces)
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {
            "name": name,
            "labels": {"app.kubernetes.io/name": "restream-operator"},
        },
        "webhooks": [hook],
    }


def namespace_selector(namespaces: tuple[str, ...]) -> dict[str, Any]:
    """The namespaces by name (the label every namespace has since Kubernetes 1.21).
    kopf also takes glob patterns (`--namespace 'team-*'`), which no selector can say:
    refused, rather than a webhook that would answer for every namespace."""
    patterns = [ns for ns in namespaces if not re.fullmatch(NAMESPACE_NAME, ns)]
    if patterns:
        raise WebhookError(
            f"--namespace {patterns[0]!r}: with --webhook, watch namespaces by their names "
            "(no patterns): the webhook configuration selects namespaces by name"
        )
    return {
        "matchExpressions": [
            {
                "key": "kubernetes.io/metadata.name",
                "operator": "In",
                "values": sorted(set(namespaces)),
            }
        ]
    }


# ---- serving -----------------------------------------------------------------------


@dataclass(frozen=True)
class WebhookPlan:
    """Where the webhook listens, what the apiserver calls, with which certificate."""

    listen_addr: str
    listen_port: int
    client_config: dict[str, Any]
    cert: ServingCert
    remove_on_exit: bool


def local_plan(spec: str) -> WebhookPlan:
    """`local:HOST:PORT`: a URL on the operator's machine, a CA made for this run."""
    _, host, port = spec.split(":", 2)
    return WebhookPlan(
        listen_addr=host,
        listen_port=int(port),
        client_config={"url": f"https://{host}:{port}"},
        cert=issue_serving_cert([host, "localhost"]),
        remove_on_exit=True,
    )


def cluster_plan(kube: Kube, namespace: str, service: str, cert_dir: Path | None) -> WebhookPlan:
    """The operator's Service; cert-manager's certificate if mounted, else our own."""
    names = [service, f"{service}.{namespace}", f"{service}.{namespace}.svc"]
    names.append(f"{service}.{namespace}.svc.cluster.local")
    if cert_dir is not None and (cert_dir / "tls.crt").exists():
        ca_file = cert_dir / "ca.crt"
        cert = ServingCert(
            ca=ca_file.read_bytes() if ca_file.exists() else (cert_dir / "tls.crt").read_bytes(),
            cert=(cert_dir / "tls.crt").read_bytes(),
            key=(cert_dir / "tls.key").read_bytes(),
        )
    else:
        cert = _stored_cert(kube, namespace, f"{service}-tls", names)
    return WebhookPlan(
        listen_addr="0.0.0.0",  # noqa: S104 (a pod: the Service routes to it)
        listen_port=CLUSTER_PORT,
        client_config={"service": {"namespace": namespace, "name": service, "port": SERVICE_PORT}},
        cert=cert,
        remove_on_exit=False,
    )


def _stored_cert(kube: Kube, namespace: str, name: str, names: list[str]) -> ServingCert:
    """The certificate kept in a Secret: reused across restarts, renewed when due."""
    secret = kube.get("Secret", namespace, name)
    if secret is not None:
        data = {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}
        if {"ca.crt", "tls.crt", "tls.key"} <= data.keys():
            stored = ServingCert(ca=data["ca.crt"], cert=data["tls.crt"], key=data["tls.key"])
            if stored.fresh_for(names):
                return stored
    cert = issue_serving_cert(names)
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": {"app.kubernetes.io/name": "restream-operator"},
            },
            "type": "kubernetes.io/tls",
            "data": {
                "ca.crt": base64.b64encode(cert.ca).decode(),
                "tls.crt": base64.b64encode(cert.cert).decode(),
                "tls.key": base64.b64encode(cert.key).decode(),
            },
        }
    )
    return cert


def install(settings: kopf.OperatorSettings, plan: WebhookPlan, memo: kopf.Memo) -> None:
    """Points kopf's webhook server at the plan's address and certificate."""
    tls_dir = Path(tempfile.mkdtemp(prefix="restream-webhook-"))
    ca, cert, key = plan.cert.write(tls_dir)
    settings.admission.server = kopf.WebhookServer(
        addr=plan.listen_addr,
        port=plan.listen_port,
        host=plan.listen_addr,
        certfile=str(cert),
        pkeyfile=str(key),
        cafile=str(ca),
    )
    settings.admission.managed = None  # we manage the configuration: our policies
    memo.webhook_tls_dir = tls_dir


def owner_reference(kube: Kube, clusterrole: str) -> dict[str, Any] | None:
    """The configuration outlives the operator's pod (a restart must not drop it) but
    not its installation: it is owned by a ClusterRole of the release."""
    if not clusterrole:
        return None
    role = kube.get("ClusterRole", None, clusterrole)
    if role is None:
        log.warning(f"ClusterRole {clusterrole} not found: the webhook configuration has no owner")
        return None
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "name": clusterrole,
        "uid": role["metadata"]["uid"],
    }


async def publish_when_listening(
    kube: Kube,
    plan: WebhookPlan,
    owner_clusterrole: str,
    name: str = CONFIGURATION_NAME,
    namespaces: tuple[str, ...] = (),
) -> None:
    """Applies the configuration once the server accepts connections, so that the
    apiserver is never sent to a port nobody listens on."""
    host = "127.0.0.1" if plan.listen_addr in ("0.0.0.0", "") else plan.listen_addr  # noqa: S104
    while True:
        try:
            _, writer = await asyncio.open_connection(host, plan.listen_port)
            writer.close()
            break
        except OSError:
            await asyncio.sleep(0.1)
    owner = await asyncio.to_thread(owner_reference, kube, owner_clusterrole)
    obj = webhook_configuration(plan.client_config, plan.cert.ca, name, namespaces)
    if owner is not None:
        obj["metadata"]["ownerReferences"] = [owner]
    await asyncio.to_thread(kube.apply, obj)
    log.info(f"admission webhook {name} registered ({plan.client_config})")
    await asyncio.to_thread(remove_legacy_mutating_configuration, kube)
    if name != CONFIGURATION_NAME:
        await asyncio.to_thread(remove_legacy_validating_configuration, kube, plan.client_config)


def remove_legacy_mutating_configuration(kube: Kube) -> None:
    """Deletes the mutating configuration earlier versions registered, if it is there."""
    with contextlib.suppress(KubeError, OSError):
        if kube.delete("MutatingWebhookConfiguration", None, CONFIGURATION_NAME):
            log.info("removed the mutating webhook configuration of an earlier version")


def remove_legacy_validating_configuration(kube: Kube, client_config: Mapping[str, Any]) -> bool:
    """Deletes the configuration chart 0.2.0's operator registered under the one name
    all installations shared, once this installation's own is registered, and only if
    it sends reviews to this installation's webhook Service: until then the upgraded
    chart keeps its owner (a ClusterRole of the old name), so that LiveStream writes
    are never left unchecked between the two. True if it was deleted."""
    ours = client_config.get("service")
    if not ours:
        return False
    with contextlib.suppress(KubeError, OSError):
        old = kube.get("ValidatingWebhookConfiguration", None, CONFIGURATION_NAME)
        services = [
            ((h.get("clientConfig") or {}).get("service") or {})
            for h in (old or {}).get("webhooks") or []
        ]
        mine = [(s.get("namespace"), s.get("name")) == (ours["namespace"], ours["name"])
                for s in services]  # fmt: skip
        if old is not None and mine and all(mine):
            kube.delete("ValidatingWebhookConfiguration", None, CONFIGURATION_NAME)
            log.info(f"removed the webhook configuration {CONFIGURATION_NAME} of chart 0.2.0")
            return True
    return False


def remove_configuration(kube: Kube, name: str = CONFIGURATION_NAME) -> None:
    with contextlib.suppress(KubeError, OSError):
        kube.delete("ValidatingWebhookConfiguration", None, name)
