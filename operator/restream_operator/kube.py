"""The few Kubernetes API calls the reconcile path makes, over the synchronous client.

Everything here blocks: call it from a thread (the reconcile pool, the admission pool) or
through ``asyncio.to_thread``, never directly from an ``async def``.

Children are written with server-side apply under one field manager, so a reconcile
that changes nothing changes nothing on the server either (no resourceVersion bump).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlencode

import orjson
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from . import models

FIELD_MANAGER = "restream-operator"
CONNECTIONS = 64

Obj = dict[str, Any]
Page = list[Obj]  # (a name of its own: Kube.list shadows the builtin in the class)
Texts = list[str]


@dataclass(frozen=True)
class Kind:
    group_version: str  # "v1" or "apps/v1"
    plural: str
    namespaced: bool = True

    def collection(self, namespace: str | None) -> str:
        """The collection's path; of a namespaced kind without a namespace, every
        namespace's."""
        base = "/api/v1" if self.group_version == "v1" else f"/apis/{self.group_version}"
        if not self.namespaced or namespace is None:
            return f"{base}/{self.plural}"
        return f"{base}/namespaces/{namespace}/{self.plural}"


_ADMISSION = "admissionregistration.k8s.io/v1"
KINDS: dict[str, Kind] = {
    "Secret": Kind("v1", "secrets"),
    "ConfigMap": Kind("v1", "configmaps"),
    "Service": Kind("v1", "services"),
    "Deployment": Kind("apps/v1", "deployments"),
    "Pod": Kind("v1", "pods"),
    "Event": Kind("v1", "events"),
    "NetworkPolicy": Kind("networking.k8s.io/v1", "networkpolicies"),
    "PodDisruptionBudget": Kind("policy/v1", "poddisruptionbudgets"),
    models.KIND: Kind(models.API_VERSION, models.PLURAL),
    "ValidatingWebhookConfiguration": Kind(_ADMISSION, "validatingwebhookconfigurations", False),
    "MutatingWebhookConfiguration": Kind(_ADMISSION, "mutatingwebhookconfigurations", False),
    "ClusterRole": Kind("rbac.authorization.k8s.io/v1", "clusterroles", False),
}


def _selector(labels: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


class KubeError(RuntimeError):
    def __init__(self, status: int, reason: str, message: str, causes: Sequence[Obj] = ()) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message  # the API server's own words, e.g. for a person to read
        # Status.details.causes: which field each refusal is about, or who holds a
        # conflicting field (server-side apply).
        self.causes = list(causes)


def _warning_texts(headers: list[str]) -> list[str]:
    """The texts of Warning headers (``299 - "text"``, RFC 7234)."""
    out = []
    for header in headers:
        code, _, rest = header.partition(" ")
        _agent, _, text = rest.partition(" ")
        if code.isdigit() and len(text) >= 2 and text[0] == text[-1] == '"':
            out.append(text[1:-1].replace('\\"', '"').replace("\\\\", "\\"))
        else:
            out.append(header)
    return out


def load_config() -> client.ApiClient:
    """In a pod, the ServiceAccount; elsewhere, $KUBECONFIG or ~/.kube/config."""
    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    except config.ConfigException:
        # $KUBECONFIG as it is now (the client reads it once, at import).
        config.load_kube_config(config_file=os.environ.get("KUBECONFIG"))  # type: ignore[no-untyped-call]
    configuration = client.Configuration.get_default_copy()
    # One kept connection per thread that calls the API (the reconcile pool, the admission
    # pool, status writes): the client's default, 5 per CPU, made it close and reopen
    # TLS connections under load ("Connection pool is full, discarding connection").
    configuration.connection_pool_maxsize = CONNECTIONS
    return client.ApiClient(configuration)


class Kube:
    def __init__(self, api: client.ApiClient, timeout: float = 30.0) -> None:
        self.api = api
        self.timeout = timeout

    def _send(
        self,
        method: str,
        path: str,
        body: Obj | list[Obj] | None = None,
        query: dict[str, str] | None = None,
        content_type: str = "application/json",
        timeout: float | tuple[float, float] | None = None,
    ) -> Any:
        """Sends one request: the client's response, its body not yet read."""
        if query:
            path = f"{path}?{urlencode(query)}"
        headers = {"Accept": "application/json", "Content-Type": content_type}
        serialized = self.api.param_serialize(
            method=method,
            resource_path=path,
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        try:
            return self.api.call_api(*serialized, _request_timeout=timeout or self.timeout)
        except ApiException as exc:  # raised by the REST layer for transport problems
            raise KubeError(exc.status or 0, str(exc.reason), str(exc.body)) from None

    def _call(
        self,
        method: str,
        path: str,
        body: Obj | list[Obj] | None = None,
        query: dict[str, str] | None = None,
        content_type: str = "application/json",
        warnings: Texts | None = None,
    ) -> Obj:
        """The response's body; ``warnings`` gets its Warning headers (admission's)."""
        response = self._send(method, path, body, query, content_type)
        try:
            response.read()
        except ApiException as exc:
            raise KubeError(exc.status or 0, str(exc.reason), str(exc.body)) from None
        if warnings is not None:
            warnings.extend(_warning_texts(response.response.headers.getlist("Warning")))
        data: bytes = response.data or b""
        if response.status >= 400:
            try:
                detail = json.loads(data)
            except ValueError:
                detail = {"message": data.decode(errors="replace") if data else ""}
            if not isinstance(detail, dict):
                detail = {}
            causes = (detail.get("details") or {}).get("causes") or []
            raise KubeError(
                response.status,
                detail.get("reason", ""),
                detail.get("message", ""),
                [c for c in causes if isinstance(c, dict)] if isinstance(causes, list) else [],
            )
        return cast(Obj, orjson.loads(data)) if data else {}  # list pages: as in watches.py

    # ---- children -------------------------------------------------------------------

    def apply(self, obj: Obj) -> Obj:
        """Server-side apply, taking ownership of every field we set (force)."""
        kind = KINDS[obj["kind"]]
        meta = obj["metadata"]
        return self._call(
            "PATCH",
            f"{kind.collection(meta.get('namespace'))}/{meta['name']}",
            body=obj,
            query={"fieldManager": FIELD_MANAGER, "force": "true"},
            content_type="application/apply-patch+yaml",
        )

    def create(self, obj: Obj) -> Obj | None:
        """Creates `obj` unless an object of that name exists: the object created, or
        None (never an overwrite)."""
        kind = KINDS[obj["kind"]]
        try:
            return self._call(
                "POST",
                kind.collection(obj["metadata"].get("namespace")),
                body=obj,
                query={"fieldManager": FIELD_MANAGER},
            )
        except KubeError as exc:
            if exc.status == 409:
                return None
            raise

    def create_if_absent(self, obj: Obj) -> bool:
        """Creates `obj` unless an object of that name exists. True when it created it."""
        return self.create(obj) is not None

    def get(self, kind: str, namespace: str | None, name: str) -> Obj | None:
        try:
            return self._call("GET", f"{KINDS[kind].collection(namespace)}/{name}")
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise

    def list(self, kind: str, namespace: str, selector: dict[str, str]) -> list[Obj]:
        return [obj for page in self.list_pages(kind, namespace, selector) for obj in page]

    def list_pages(
        self, kind: str, namespace: str | None, selector: dict[str, str], page: int = 250
    ) -> Iterator[Page]:
        """Every object of ``kind`` with the labels, ``page`` at a time (a cluster's
        thousands of pods never sit in memory at once); ``namespace`` None: all."""
        token = ""
        while True:
            out = self.list_page(kind, namespace, selector, token, page)
            yield cast(Page, out.get("items", []))
            token = (out.get("metadata") or {}).get("continue") or ""
            if not token:
                return

    def list_page(
        self,
        kind: str,
        namespace: str | None,
        selector: dict[str, str],
        token: str,
        limit: int,
        fields: dict[str, str] | None = None,
    ) -> Obj:
        """One page of a listing, as the API server sends it (its ``metadata`` holds the
        ``continue`` token and the resourceVersion to watch from). ``fields``: a field
        selector (one object by name, the Events of one object)."""
        query = {"labelSelector": _selector(selector), "limit": str(limit)}
        if fields:
            query["fieldSelector"] = _selector(fields)
        if token:
            query["continue"] = token
        return self._call("GET", KINDS[kind].collection(namespace), query=query)

    def watch(
        self,
        kind: str,
        namespace: str | None,
        selector: dict[str, str],
        version: str,
        timeout_seconds: int,
        fields: dict[str, str] | None = None,
    ) -> Any:
        """An open watch from ``version``, with bookmarks: the raw response, whose lines
        are the events (the caller reads and closes it)."""
        query = {"labelSelector": _selector(selector), "watch": "true",
                 "resourceVersion": version, "allowWatchBookmarks": "true",
                 "timeoutSeconds": str(timeout_seconds)}  # fmt: skip
        if fields:
            query["fieldSelector"] = _selector(fields)
        path = KINDS[kind].collection(namespace)
        response = self._send(
            "GET", path, query=query, timeout=(self.timeout, timeout_seconds + 30)
        )
        if response.status >= 400:
            response.read()
            raise KubeError(response.status, "", (response.data or b"").decode(errors="replace"))
        return response.response  # urllib3's, not yet read

    def proxy_get(self, namespace: str, service: str, port: str, path: str) -> tuple[int, bytes]:
        """GET through the API server's proxy to a Service (``path`` from its root): the
        status and the body, as that Service answered or the API server refused."""
        response = self._send(
            "GET", f"/api/v1/namespaces/{namespace}/services/{service}:{port}/proxy{path}"
        )
        try:
            response.read()
        except ApiException as exc:
            raise KubeError(exc.status or 0, str(exc.reason), str(exc.body)) from None
        return int(response.status), bytes(response.data or b"")

    def patch_status(self, namespace: str, name: str, patch: Obj) -> Obj:
        """Merge-patches a LiveStream's status subresource."""
        return self._call(
            "PATCH",
            f"/apis/{models.API_VERSION}/namespaces/{namespace}/{models.PLURAL}/{name}/status",
            body=patch,
            content_type="application/merge-patch+json",
        )

    def patch(self, kind: str, namespace: str, name: str, patch: Obj) -> Obj:
        """A JSON merge patch (for what is not ours to apply, such as a LiveStream's
        annotations)."""
        return self._call(
            "PATCH",
            f"{KINDS[kind].collection(namespace)}/{name}",
            body=patch,
            content_type="application/merge-patch+json",
        )

    def may_get_secret(
        self,
        *,
        user: str,
        uid: str,
        groups: Sequence[str],
        extra: Mapping[str, Sequence[str]],
        namespace: str,
        name: str,
    ) -> bool:
        """Asks the API server (a SubjectAccessReview) whether a user may get a Secret."""
        review = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {
                "user": user,
                "uid": uid,
                "groups": list(groups),
                "extra": {k: list(v) for k, v in extra.items()},
                "resourceAttributes": {
                    "namespace": namespace,
                    "verb": "get",
                    "group": "",
                    "resource": "secrets",
                    "name": name,
                },
            },
        }
        out = self._call("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", body=review)
        return bool((out.get("status") or {}).get("allowed"))

    def whoami(self) -> Obj:
        """Who the API server takes these credentials for (a SelfSubjectReview's
        userInfo). Any authenticated user may ask, so it also proves a token good: a bad
        one gets 401."""
        review = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
        out = self._call("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", body=review)
        return cast(Obj, (out.get("status") or {}).get("userInfo") or {})

    def delete(self, kind: str, namespace: str | None, name: str) -> bool:
        try:
            self._call(
                "DELETE",
                f"{KINDS[kind].collection(namespace)}/{name}",
                body={"propagationPolicy": "Background"},
            )
        except KubeError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    # ---- writes on someone's behalf (the console) --------------------------------------
    # Made with the credentials of whoever this client carries, under their tool's own
    # field manager, never forced: a refusal comes back as the API server gave it.

    def apply_as(
        self,
        obj: Obj,
        manager: str,
        *,
        force: bool = False,
        dry_run: bool = False,
        warnings: Texts | None = None,
    ) -> Obj:
        """Server-side apply of ``obj`` under ``manager``. A resourceVersion in ``obj``'s
        metadata is a precondition (409 when the object has moved on)."""
        kind = KINDS[obj["kind"]]
        meta = obj["metadata"]
        query = {"fieldManager": manager, "force": "true" if force else "false"}
        if dry_run:
            query["dryRun"] = "All"
        return self._call(
            "PATCH",
            f"{kind.collection(meta.get('namespace'))}/{meta['name']}",
            body=obj,
            query=query,
            content_type="application/apply-patch+yaml",
            warnings=warnings,
        )

    def create_as(self, obj: Obj, manager: str, *, dry_run: bool = False) -> Obj:
        """Creates ``obj`` (409 AlreadyExists when its name is taken: never an overwrite)."""
        query = {"fieldManager": manager, **({"dryRun": "All"} if dry_run else {})}
        kind = KINDS[obj["kind"]]
        return self._call(
            "POST", kind.collection(obj["metadata"].get("namespace")), body=obj, query=query
        )

    def replace_as(self, obj: Obj, manager: str, *, dry_run: bool = False) -> Obj:
        """Replaces ``obj`` (PUT): its metadata.resourceVersion is the precondition."""
        query = {"fieldManager": manager, **({"dryRun": "All"} if dry_run else {})}
        kind = KINDS[obj["kind"]]
        meta = obj["metadata"]
        return self._call(
            "PUT", f"{kind.collection(meta.get('namespace'))}/{meta['name']}", body=obj,
            query=query,
        )  # fmt: skip

    def json_patch(
        self,
        kind: str,
        namespace: str,
        name: str,
        ops: Page,
        manager: str,
        *,
        dry_run: bool = False,
    ) -> Obj:
        """An RFC 6902 JSON patch: what server-side apply cannot do, such as removing a
        field another manager owns (guard it with ``test`` operations)."""
        query = {"fieldManager": manager, **({"dryRun": "All"} if dry_run else {})}
        return self._call(
            "PATCH",
            f"{KINDS[kind].collection(namespace)}/{name}",
            body=ops,
            query=query,
            content_type="application/json-patch+json",
        )

    def delete_exactly(self, kind: str, namespace: str, name: str, uid: str, version: str) -> bool:
        """Deletes the object only while it is the one with this uid and resourceVersion
        (nobody changed it since): False when it is gone or is not that one any more."""
        try:
            self._call(
                "DELETE",
                f"{KINDS[kind].collection(namespace)}/{name}",
                body={"preconditions": {"uid": uid, "resourceVersion": version}},
            )
        except KubeError as exc:
            if exc.status in (404, 409):
                return False
            raise
        return True
