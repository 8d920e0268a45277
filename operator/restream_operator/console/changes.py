"""Changes from the console: create a LiveStream; add, edit, enable, disable and remove
a destination. Every write carries the viewer's credentials, so RBAC and admission
decide, and the page shows their answer next to the field it names.

How a change is written, so that GitOps tools and people can live with it:

- Server-side apply under the field manager ``restream-console``, not forced: a field
  another manager owns (an Argo CD or Flux apply, a ``kubectl apply``) comes back as a
  409 naming that manager, and nothing is written. The page then says who owns it and
  offers to take the field over (``takeOver``: kubectl's ``--force-conflicts``) only as
  the person's explicit second choice, saying that a GitOps tool will put its value
  back. An apply is
  declarative per manager (whatever the console owned and leaves out would be removed),
  so the console re-sends what it owns, read back from ``managedFields`` as client-go's
  Extract functions do, with only the one destination changed, and with the
  resourceVersion it read as a precondition.
- Always a server-side dry run of the LiveStream write first (the webhook and the CEL
  rules answer it), then of the Secret; nothing is stored unless both pass.
- A key typed in goes into a Secret of the console's (fixed name per LiveStream and
  destination, labelled) and is referenced: never inline in the spec, never in a log,
  a response or a URL. When the LiveStream write fails after this request wrote the
  Secret, the request takes back exactly what it wrote.
- What server-side apply cannot do is a JSON patch guarded by ``test`` operations:
  removing a destination another manager owns, and replacing an inline ``streamKey``
  (someone else's) with a Secret reference, which the CRD's "exactly one of" rule
  allows only in one write.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import functools
import json
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from aiohttp import web

from .. import models, naming
from ..admission.fields import check_metadata_name, check_namespace, check_stream_key
from ..agent.redact import Redactor
from ..kube import Kube, KubeError, Obj
from . import server

log = logging.getLogger(__name__)

FIELD_MANAGER = "restream-console"
SECRET_KEY = "streamKey"
LABEL_MADE_BY = naming.LABEL_MANAGED_BY
MADE_BY = FIELD_MANAGER
ANNOTATION_DESTINATION = naming.ANNOTATION_RESTREAM_NAME
# A write whose precondition failed (the operator's status writes move the
# resourceVersion) is read and tried again, this many times in all.
ATTEMPTS = 5
# The API server never echoes a Secret's data; the console masks keys in its answers
# anyway, but not a key so short that masking it would garble the API server's words.
MASKED_KEY_LENGTH = 8
# Bounds on what a request may ask for, before anything reaches the API server.
MAX_DESTINATION_NAME = 4 * models.MAX_NAME_LENGTH
_DNS_SUBDOMAIN = re.compile(models.DNS_SUBDOMAIN)
# The API server's answer to a JSON patch whose `test` failed: nothing else in it.
_TEST_FAILED = "the server rejected our request due to an error in our request"
_STALE = "the object has been modified"
_CONFLICT_WITH = re.compile(r'conflict with "([^"]*)"')
_WEBHOOK_PREFIX = re.compile(r'^admission webhook "[^"]*" denied the request: ')
# One problem of the webhook's message: `spec.restreams[0] ("My Twitch").serverUrl: ...`
# (admission.text.item and field); names are quoted with backslash escapes.
_QUOTED = r'"(?:[^"\\]|\\.)*"'
_PROBLEM = re.compile(rf"^(?:- )?((?:\[\d+\] \({_QUOTED}\)|{_QUOTED}|[^\s:\"])+): (.+)$")
_ITEM_LABEL = re.compile(rf"\[(\d+)\] \({_QUOTED}\)")
# The CRD's rules repeat the value before their message; the form shows the value.
_ECHO = re.compile(rf"^Invalid value: (?:{_QUOTED}: )?")
_ENTRY_FIELD = re.compile(r"^restreams\[(\d+)\](?:\.(\w+))?")


class Refusal(Exception):
    """What the console answers instead of a change: the status, a message for people,
    and messages by form field (422)."""

    def __init__(
        self,
        status: int,
        message: str,
        fields: dict[str, str] | None = None,
        managers: list[str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.fields = fields
        self.managers = managers

    def response(self) -> web.Response:
        body: dict[str, Any] = {"message": self.message}
        if self.fields is not None or self.status == 422:
            body["fields"] = self.fields or {}
        if self.managers:
            body["managers"] = self.managers
        return web.json_response(body, status=self.status)


class _Stale(Exception):
    """The object moved on between reading it and writing it: read it again."""


# ---- how the API server's refusals map to the form ------------------------------------

FieldMap = Callable[[str], str | None]


def _api_path(raw: str) -> str:
    """``spec.restreams[0] ("Yt").serverUrl`` (webhook) or ``.spec...`` as a plain path."""
    return _ITEM_LABEL.sub(r"[\1]", raw.strip().lstrip("."))


def creation_field(path: str) -> str | None:
    """The creation form's name for an API field path, e.g. ``restreams[1].serverUrl``."""
    if path == "metadata.name":
        return "name"
    if path == "metadata.namespace":
        return "namespace"
    if not path.startswith("spec."):
        return None
    path = path.removeprefix("spec.")
    entry = _ENTRY_FIELD.match(path)
    if entry and entry[2] in ("streamKey", "streamKeySecretRef"):
        return f"restreams[{entry[1]}].streamKey"
    return path


def destination_field(index: int) -> FieldMap:
    """The destination form's names (``serverUrl``...) for the fields of entry ``index``."""

    def mapped(path: str) -> str | None:
        entry = _ENTRY_FIELD.match(path.removeprefix("spec."))
        if not path.startswith("spec.") or not entry or int(entry[1]) != index:
            return None
        if entry[2] in ("streamKey", "streamKeySecretRef"):
            return "streamKey"
        return entry[2] if entry[2] in ("name", "serverUrl", "enabled") else None

    return mapped


def field_messages(exc: KubeError, mapped: FieldMap) -> dict[str, str]:
    """Messages by form field, from the CRD's rules (``details.causes``) or the webhook
    (its message, one ``field: message`` per problem)."""
    found: list[tuple[str, str]] = []
    for cause in exc.causes:
        if isinstance(cause.get("field"), str) and isinstance(cause.get("message"), str):
            found.append((cause["field"], _ECHO.sub("", cause["message"])))
    if _WEBHOOK_PREFIX.match(exc.message):
        for line in _WEBHOOK_PREFIX.sub("", exc.message).splitlines():
            problem = _PROBLEM.match(line.strip())
            if problem:
                found.append((problem[1], problem[2]))
    out: dict[str, str] = {}
    for where, message in found:
        name = mapped(_api_path(where))
        if name is not None:
            out[name] = f"{out[name]} {message}" if name in out else message
    return out


def refusal(exc: KubeError, mapped: FieldMap) -> Refusal:
    """The API server's refusal, for the page: its own words, and where they belong."""
    if exc.status == 422:
        return Refusal(422, exc.message, field_messages(exc, mapped))
    if exc.status == 409:
        managers = sorted({m for c in exc.causes for m in _CONFLICT_WITH.findall(str(c))})
        return Refusal(409, exc.message or exc.reason, managers=managers)
    if exc.status in (400, 401, 403, 404):
        return Refusal(exc.status, exc.message or exc.reason)
    return Refusal(
        502, f"The Kubernetes API server answered {exc.status} {exc.reason}: {exc.message}"
    )


# ---- what the console owns of an object ------------------------------------------------


def owned_fields(obj: Obj, manager: str = FIELD_MANAGER) -> Obj:
    """The FieldsV1 set of ``manager``'s applies to ``obj`` (not its Update writes)."""
    for entry in (obj.get("metadata") or {}).get("managedFields") or []:
        if (
            entry.get("manager") == manager
            and entry.get("operation") == "Apply"
            and not entry.get("subresource")
        ):
            fields = entry.get("fieldsV1")
            return fields if isinstance(fields, dict) else {}
    return {}


def extract(value: Any, fields: Obj) -> Any:
    """The part of ``value`` a FieldsV1 set covers: what its manager last applied, at the
    values the object holds now."""
    if not fields:
        return copy.deepcopy(value)  # a leaf (or an atomic field) owned whole
    if isinstance(value, dict):
        return {
            k[2:]: extract(value[k[2:]], sub)
            for k, sub in fields.items()
            if k.startswith("f:") and k[2:] in value
        }
    if isinstance(value, list):
        keys = {k: json.loads(k[2:]) for k in fields if k.startswith("k:")}
        out = []
        for item in value:
            for k, key in keys.items():
                if isinstance(item, dict) and all(item.get(a) == b for a, b in key.items()):
                    out.append({**extract(item, fields[k]), **key})
            if any(k.startswith("v:") and json.loads(k[2:]) == item for k in fields):
                out.append(copy.deepcopy(item))
        return out
    return copy.deepcopy(value)


def owners_of_entry(obj: Obj, name: str) -> set[tuple[str, str]]:
    """(manager, operation) of every write that owns a field of restream ``name``."""
    out = set()
    for entry in (obj.get("metadata") or {}).get("managedFields") or []:
        spec = ((entry.get("fieldsV1") or {}).get("f:spec") or {}).get("f:restreams") or {}
        if any(k.startswith("k:") and json.loads(k[2:]) == {"name": name} for k in spec):
            out.add((str(entry.get("manager")), str(entry.get("operation"))))
    return out


def key_secret_name(livestream: str, destination: str) -> str:
    """The console's Secret for a destination's key: fixed, so that typing a new key
    replaces the old one; named after the pair, as the destination's relay is."""
    return f"{naming.relay_name(livestream, destination)}-console-key"


def _entries(obj: Obj) -> list[Obj]:
    entries = (obj.get("spec") or {}).get("restreams") or []
    return [e for e in entries if isinstance(e, dict)]


def _index(entries: list[Obj], name: str) -> int | None:
    return next((i for i, e in enumerate(entries) if e.get("name") == name), None)


def _mine(current: Obj) -> Obj:
    """What the console applied to ``current`` before, to apply again with a change, and
    the resourceVersion it was read at as the precondition."""
    meta = current["metadata"]
    owned = owned_fields(current)
    mine: Obj = extract(current, owned) if owned else {}  # (an empty set is no leaf)
    mine.update(apiVersion=models.API_VERSION, kind=models.KIND)
    mine["metadata"] = {
        **(mine.get("metadata") or {}),
        "name": meta["name"],
        "namespace": meta["namespace"],
        "resourceVersion": meta["resourceVersion"],
    }
    return mine


def _skeleton(namespace: str, name: str) -> Obj:
    return {
        "apiVersion": models.API_VERSION,
        "kind": models.KIND,
        "metadata": {"name": name, "namespace": namespace},
    }


# ---- the Secrets one request writes ----------------------------------------------------


@dataclass
class _Written:
    name: str
    uid: str
    version: str  # what this request left it at
    before: Obj | None  # None: this request created it


@dataclass
class Keys:
    """The keys a request stores, and how to take back exactly what it wrote."""

    kube: Kube
    namespace: str
    livestream: str
    planned: dict[str, tuple[str, str, Obj | None]] = field(default_factory=dict)
    written: list[_Written] = field(default_factory=list)
    redactor: Redactor = field(default_factory=Redactor)

    def _secret(self, destination: str, key: str, owner: Obj | None) -> Obj:
        meta: Obj = {
            "name": key_secret_name(self.livestream, destination),
            "namespace": self.namespace,
            "labels": {LABEL_MADE_BY: MADE_BY, naming.LABEL_LIVESTREAM: self.livestream},
            "annotations": {ANNOTATION_DESTINATION: destination},
        }
        if owner is not None:
            # Deleted with its LiveStream, by the garbage collector.
            meta["ownerReferences"] = [_owner_reference(owner)]
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "Opaque",
            "metadata": meta,
            "data": {SECRET_KEY: base64.b64encode(key.encode()).decode()},
        }

    def _refusal(self, exc: KubeError) -> Refusal:
        answer = refusal(exc, lambda _: None)
        answer.message = self.redactor(answer.message)
        return answer

    def check(self, destination: str, key: str, owner: Obj | None) -> None:
        """A dry run of storing ``key`` for ``destination``; Refusal when it would fail
        or when the Secret of that name is not the console's."""
        if len(key) >= MASKED_KEY_LENGTH:
            self.redactor.add(key)
        secret = self._secret(destination, key, owner)
        name = secret["metadata"]["name"]
        try:
            existing = self.kube.get("Secret", self.namespace, name)
        except KubeError as exc:
            if exc.status != 403:
                raise self._refusal(exc) from None
            existing = None  # not readable: creating it says whether it exists
        try:
            if existing is None:
                self.kube.create_as(secret, FIELD_MANAGER, dry_run=True)
            else:
                labels = existing["metadata"].get("labels") or {}
                if labels.get(LABEL_MADE_BY) != MADE_BY:
                    raise Refusal(
                        409,
                        f'A Secret named "{name}" already exists in namespace '
                        f"{self.namespace} and the console did not make it (no label "
                        f"{LABEL_MADE_BY}={MADE_BY}): the console does not overwrite it.",
                    )
                self.kube.replace_as(_replacing(existing, secret), FIELD_MANAGER, dry_run=True)
        except KubeError as exc:
            raise self._refusal(exc) from None
        self.planned[destination] = (key, name, existing)

    def write(self, owner: Obj | None) -> None:
        """Stores every key checked (once, however often a request retries)."""
        for destination, (key, name, existing) in list(self.planned.items()):
            secret = self._secret(destination, key, owner)
            try:
                if existing is None:
                    out = self.kube.create_as(secret, FIELD_MANAGER)
                else:
                    out = self.kube.replace_as(_replacing(existing, secret), FIELD_MANAGER)
            except KubeError as exc:
                self.undo()
                raise self._refusal(exc) from None
            meta = out["metadata"]
            self.written.append(_Written(name, meta["uid"], meta["resourceVersion"], existing))
            del self.planned[destination]

    def adopt(self, owner: Obj) -> None:
        """Gives the Secrets this request wrote to the LiveStream it created (deleted
        with it). Best effort: without it, they are only left behind."""
        for w in self.written:
            ops = [
                {
                    "op": "add",
                    "path": "/metadata/ownerReferences",
                    "value": [_owner_reference(owner)],
                }
            ]
            try:
                self.kube.json_patch("Secret", self.namespace, w.name, ops, FIELD_MANAGER)
            except KubeError as exc:
                log.warning(
                    f"Secret {self.namespace}/{w.name} not given to its LiveStream: "
                    f"{exc.status} {exc.reason}"
                )

    def undo(self) -> None:
        """Takes back what this request wrote, unless someone changed it since."""
        for w in reversed(self.written):
            try:
                if w.before is None:
                    self.kube.delete_exactly("Secret", self.namespace, w.name, w.uid, w.version)
                else:
                    restored = {k: v for k, v in w.before.items() if k != "status"}
                    restored["metadata"] = {
                        k: v for k, v in w.before["metadata"].items() if k != "managedFields"
                    }
                    restored["metadata"]["resourceVersion"] = w.version
                    self.kube.replace_as(restored, FIELD_MANAGER)
            except KubeError as exc:
                log.warning(
                    f"Secret {self.namespace}/{w.name} not taken back: {exc.status} {exc.reason}"
                )
        self.written.clear()


def _owner_reference(owner: Obj) -> Obj:
    return {
        "apiVersion": models.API_VERSION,
        "kind": models.KIND,
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
    }


def _replacing(existing: Obj, secret: Obj) -> Obj:
    """``secret`` as a replacement of ``existing`` (its version the precondition)."""
    out = copy.deepcopy(secret)
    # Not its owners: a Secret left by a LiveStream of the same name, since deleted,
    # would go to the garbage collector with the new key in it.
    out["metadata"]["resourceVersion"] = existing["metadata"]["resourceVersion"]
    return out


# ---- the writes ------------------------------------------------------------------------


@dataclass(frozen=True)
class Destination:
    """A destination as the form sends it; None: leave that field as it is."""

    name: str
    server_url: str | None = None
    enabled: bool | None = None
    key: str | None = None
    may_add: bool = True  # False: only an existing destination is changed
    # The person chose to take the fields over from the managers a first try named
    # (kubectl apply --force-conflicts): never the default.
    take_over: bool = False


@dataclass(frozen=True)
class Creation:
    namespace: str
    name: str
    hls: bool
    destinations: tuple[Destination, ...]


class Writer:
    """The console's writes, with one viewer's credentials. Blocking: call it in a thread."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self.warnings: list[str] = []  # admission's, of the writes made (not dry runs)
        self._about: FieldMap = lambda _: None  # which of them concern the change
        self._keys: set[str] = set()  # the key Secrets the change wrote

    def relevant_warnings(self) -> list[str]:
        """Admission's warnings about what the change touched. The webhook reviews the
        whole object: what it says of other destinations is not news here. Nor is a key
        Secret "not there yet" that the change wrote a moment ago (the webhook caches
        its lookups, and the dry run asked first)."""
        out = []
        for text in dict.fromkeys(self.warnings):
            problem = _PROBLEM.match(text)
            if problem and self._about(_api_path(problem[1])) is None:
                continue
            if any(f'Secret "{name}" does not exist yet' in text for name in self._keys):
                continue
            out.append(text)
        return out

    def _apply(self, obj: Obj, mapped: FieldMap, *, dry_run: bool, take_over: bool = False) -> Obj:
        try:
            if take_over:
                warnings = None if dry_run else self.warnings
                return self.kube.apply_as(
                    obj, FIELD_MANAGER, force=True, dry_run=dry_run, warnings=warnings
                )
            return self._apply_once(obj, dry_run=dry_run)
        except KubeError as exc:
            if exc.status == 409 and _STALE in exc.message:
                raise _Stale() from None
            raise refusal(exc, mapped) from None

    def _apply_once(self, obj: Obj, *, dry_run: bool) -> Obj:
        warnings = None if dry_run else self.warnings
        try:
            return self.kube.apply_as(obj, FIELD_MANAGER, dry_run=dry_run, warnings=warnings)
        except KubeError as exc:
            managers = {m for c in exc.causes for m in _CONFLICT_WITH.findall(str(c))}
            if exc.status != 409 or managers != {FIELD_MANAGER}:
                raise
        # Every conflict is with the console's own earlier JSON patch (the Update entry
        # of the same manager): taking those fields over takes nothing from anyone.
        return self.kube.apply_as(
            obj, FIELD_MANAGER, force=True, dry_run=dry_run, warnings=warnings
        )

    def _patch(self, obj: Obj, ops: list[Obj], mapped: FieldMap, *, dry_run: bool) -> Obj:
        meta = obj["metadata"]
        try:
            return self.kube.json_patch(
                models.KIND, meta["namespace"], meta["name"], ops, FIELD_MANAGER, dry_run=dry_run
            )
        except KubeError as exc:
            if exc.status == 422 and exc.message == _TEST_FAILED and not exc.causes:
                raise _Stale() from None
            raise refusal(exc, mapped) from None

    def _get(self, namespace: str, name: str) -> Obj:
        try:
            obj = self.kube.get(models.KIND, namespace, name)
        except KubeError as exc:
            raise refusal(exc, lambda _: None) from None
        if obj is None:
            raise Refusal(404, f'LiveStream "{name}" not found in namespace {namespace}')
        return obj

    def _retrying(self, attempt: Callable[[], Obj]) -> Obj:
        for _ in range(ATTEMPTS):
            try:
                return attempt()
            except _Stale:
                continue
        raise Refusal(409, "The LiveStream kept changing while the console wrote it: try again.")

    # -- create --

    def create(self, form: Creation) -> Obj:
        try:
            if self.kube.get(models.KIND, form.namespace, form.name) is not None:
                raise Refusal(
                    409,
                    f'LiveStream "{form.name}" already exists in namespace {form.namespace}: '
                    "open it to change its destinations.",
                    fields={"name": "A LiveStream of this name already exists here."},
                )
        except KubeError as exc:
            if exc.status != 403:  # may create without reading: the apply will say
                raise refusal(exc, creation_field) from None
        obj = _skeleton(form.namespace, form.name)
        restreams: list[Obj] = []
        for d in form.destinations:
            ref = {"name": key_secret_name(form.name, d.name), "key": SECRET_KEY}
            restreams.append(
                {
                    "name": d.name,
                    "serverUrl": d.server_url,
                    "enabled": d.enabled is not False,
                    "streamKeySecretRef": ref,
                }
            )
        obj["spec"] = {"playback": {"hls": form.hls}, "restreams": restreams}
        self._apply(obj, creation_field, dry_run=True)
        keys = Keys(self.kube, form.namespace, form.name)
        for i, d in enumerate(form.destinations):
            try:
                keys.check(d.name, d.key or "", None)
            except Refusal as r:
                if r.status == 409:  # the Secret's name is taken: say which destination
                    r.status, r.fields = 422, {f"restreams[{i}].streamKey": r.message}
                raise
        keys.write(None)
        self._about, self._keys = creation_field, {w.name for w in keys.written}
        try:
            created = self._apply(obj, creation_field, dry_run=False)
        except (Refusal, _Stale):
            keys.undo()
            raise
        keys.adopt(created)
        log.info(f"created LiveStream {form.namespace}/{form.name}")
        return created

    # -- one destination --

    def put(self, namespace: str, name: str, d: Destination) -> Obj:
        """Adds or edits destination ``d.name``: only the fields ``d`` sets."""
        keys = Keys(self.kube, namespace, name)
        try:
            return self._retrying(lambda: self._put_once(namespace, name, d, keys))
        except Refusal:
            keys.undo()
            raise

    def _put_once(self, namespace: str, name: str, d: Destination, keys: Keys) -> Obj:
        current = self._get(namespace, name)
        entries = _entries(current)
        index = _index(entries, d.name)
        entry = entries[index] if index is not None else None
        mapped = destination_field(index if index is not None else len(entries))
        if entry is None and not d.may_add:
            raise Refusal(404, f'LiveStream "{name}" has no destination named "{d.name}"')
        if entry is None and (d.server_url is None or not d.key):
            missing = (
                {"serverUrl": "Enter the destination's server URL."} if not d.server_url else {}
            )
            if not d.key:
                missing["streamKey"] = "Enter the destination's stream key."
            raise Refusal(
                422, "Not saved: a new destination needs its server URL and key.", missing
            )
        ref = {"name": key_secret_name(name, d.name), "key": SECRET_KEY} if d.key else None

        mine = _mine(current)
        restreams = mine.setdefault("spec", {}).setdefault("restreams", [])
        mine_entry = next((e for e in restreams if e.get("name") == d.name), None)
        if mine_entry is None:
            mine_entry = {"name": d.name}
            restreams.append(mine_entry)
        # Only what changes, or what the console owns already: an unchanged value
        # someone else set stays theirs alone.
        for key, value in (("serverUrl", d.server_url), ("enabled", d.enabled)):
            if value is not None and (
                entry is None or entry.get(key) != value or key in mine_entry
            ):
                mine_entry[key] = value
        if entry is None and "enabled" not in mine_entry:
            mine_entry["enabled"] = True
        # In the object's order: an apply lists its entries in the order it gives them.
        where = {str(e.get("name")): i for i, e in enumerate(entries)}
        restreams.sort(key=lambda e: where.get(str(e.get("name")), len(entries)))
        swap = ref is not None and entry is not None and "streamKey" in entry
        ops: list[Obj] = []
        if swap:
            # An inline key (someone else's: the console writes none) and a reference may
            # not coexist, and an apply cannot remove another manager's field: one JSON
            # patch swaps them, if the entry is still where it was read.
            assert index is not None
            ops = [
                {
                    "op": "test",
                    "path": "/metadata/resourceVersion",
                    "value": current["metadata"]["resourceVersion"],
                },
                {"op": "test", "path": f"/spec/restreams/{index}/name", "value": d.name},
                {"op": "remove", "path": f"/spec/restreams/{index}/streamKey"},
                {"op": "add", "path": f"/spec/restreams/{index}/streamKeySecretRef", "value": ref},
            ]
            self._patch(current, ops, mapped, dry_run=True)
        elif ref is not None:
            mine_entry["streamKeySecretRef"] = ref
        # (with a swap, the rest without the reference: it is not there yet)
        self._apply(mine, mapped, dry_run=True, take_over=d.take_over)

        if d.key and d.name not in keys.planned and not keys.written:
            keys.check(d.name, d.key, current)
        keys.write(current)
        self._about, self._keys = mapped, {w.name for w in keys.written}
        if swap:
            swapped = self._patch(current, ops, mapped, dry_run=False)
            mine["metadata"]["resourceVersion"] = swapped["metadata"]["resourceVersion"]
            mine_entry["streamKeySecretRef"] = ref
        written = self._apply(mine, mapped, dry_run=False, take_over=d.take_over)
        log.info(f"destination {d.name!r} of LiveStream {namespace}/{name} written")
        return written

    def remove(self, namespace: str, name: str, destination: str) -> Obj:
        out = self._retrying(lambda: self._remove_once(namespace, name, destination))
        self._forget_key(namespace, name, destination)
        return out

    def _remove_once(self, namespace: str, name: str, destination: str) -> Obj:
        current = self._get(namespace, name)
        entries = _entries(current)
        index = _index(entries, destination)
        if index is None:
            raise Refusal(404, f'LiveStream "{name}" has no destination named "{destination}"')
        # (what admission says after a removal is of other destinations: none shown)
        mapped = destination_field(index)
        if owners_of_entry(current, destination) == {(FIELD_MANAGER, "Apply")}:
            # The console's alone: applying what it owns without it removes it.
            mine = _mine(current)
            spec = mine.setdefault("spec", {})
            spec["restreams"] = [
                e for e in spec.get("restreams") or [] if e.get("name") != destination
            ]
            self._apply(mine, mapped, dry_run=True)
            return self._apply(mine, mapped, dry_run=False)
        # Someone else's too: an apply cannot remove what another manager owns. The test
        # makes sure the index still points at this destination.
        ops = [
            {"op": "test", "path": f"/spec/restreams/{index}/name", "value": destination},
            {"op": "remove", "path": f"/spec/restreams/{index}"},
        ]
        self._patch(current, ops, mapped, dry_run=True)
        return self._patch(current, ops, mapped, dry_run=False)

    def _forget_key(self, namespace: str, name: str, destination: str) -> None:
        """Deletes the console's Secret of a removed destination, if it made one.
        Best effort: the viewer may not be allowed to."""
        secret_name = key_secret_name(name, destination)
        try:
            secret = self.kube.get("Secret", namespace, secret_name)
            if secret is None:
                return
            meta = secret["metadata"]
            labels = meta.get("labels") or {}
            if labels.get(LABEL_MADE_BY) == MADE_BY and (
                (meta.get("annotations") or {}).get(ANNOTATION_DESTINATION) == destination
            ):
                self.kube.delete_exactly(
                    "Secret", namespace, secret_name, meta["uid"], meta["resourceVersion"]
                )
        except KubeError as exc:
            log.warning(f"Secret {namespace}/{secret_name} left: {exc.status} {exc.reason}")


# ---- the endpoints ---------------------------------------------------------------------

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _answering(handler: Handler) -> Handler:
    @functools.wraps(handler)
    async def answered(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except Refusal as r:
            return r.response()

    return answered


async def _body(request: web.Request) -> Obj:
    if request.content_type != "application/json":
        raise Refusal(415, "Send JSON (Content-Type: application/json).")
    try:
        body = await request.json()
    except ValueError:
        raise Refusal(400, "The request's body is not JSON.") from None
    if not isinstance(body, dict):
        raise Refusal(400, "The request's body must be a JSON object.")
    return body


def _object_name(request: web.Request) -> tuple[str, str]:
    """The namespace and name in the path, checked before they reach an API server URL."""
    namespace, name = request.match_info["namespace"], request.match_info["name"]
    if check_namespace(namespace) or not namespace:
        raise Refusal(404, "Not a namespace name.")
    if len(name) > 253 or not _DNS_SUBDOMAIN.fullmatch(name):
        raise Refusal(404, "Not a LiveStream name.")
    return namespace, name


def _destination_name(request: web.Request) -> str:
    name = request.match_info["dest"]
    if not name or len(name) > MAX_DESTINATION_NAME:
        raise Refusal(404, "Not a destination name.")
    return name


def _string(body: Obj, key: str, where: str, problems: dict[str, str]) -> str | None:
    value = body.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        problems[where] = "Must be text."
        return None
    return value


def _flag(body: Obj, key: str, where: str, problems: dict[str, str]) -> bool | None:
    value = body.get(key)
    if value is not None and not isinstance(value, bool):
        problems[where] = "Must be true or false."
        return None
    return value


def _key(body: Obj, where: str, problems: dict[str, str], required: bool) -> str | None:
    key = _string(body, "streamKey", where, problems)
    if key is None:
        if required and where not in problems:
            problems[where] = "Enter the destination's stream key."
        return None
    # Admission never sees a key in a Secret: this is the one place it is checked.
    found = check_stream_key(key)
    if found:
        problems[where] = f"The stream key {found[0]}"
    return key


def _local_refusal(problems: dict[str, str]) -> None:
    if problems:
        raise Refusal(422, "Not saved: see the messages next to the fields.", problems)


def _creation(body: Obj) -> Creation:
    problems: dict[str, str] = {}
    namespace = _string(body, "namespace", "namespace", problems) or ""
    name = _string(body, "name", "name", problems) or ""
    if not namespace:
        problems.setdefault("namespace", "Enter the namespace to create the LiveStream in.")
    for message in check_namespace(namespace):
        problems["namespace"] = f"Namespace {message}"
    for message in check_metadata_name(name):
        problems.setdefault("name", f"Name {message}")
    playback = body.get("playback") or {}
    hls = playback.get("hls", False) if isinstance(playback, dict) else None
    if not isinstance(hls, bool):
        problems["playback.hls"] = "Must be true or false."
    rows = body.get("restreams") or []
    if not isinstance(rows, list) or len(rows) > models.MAX_RESTREAMS_CEILING:
        rows = []
        problems["restreams"] = f"At most {models.MAX_RESTREAMS_CEILING} destinations."
    destinations = []
    for i, row in enumerate(rows):
        where = f"restreams[{i}]"
        if not isinstance(row, dict):
            problems[where] = "Must be a destination."
            continue
        dest = _string(row, "name", f"{where}.name", problems) or ""
        if len(dest) > MAX_DESTINATION_NAME:
            problems[f"{where}.name"] = "Too long."
        url = _string(row, "serverUrl", f"{where}.serverUrl", problems) or ""
        enabled = _flag(row, "enabled", f"{where}.enabled", problems)
        key = _key(row, f"{where}.streamKey", problems, required=True)
        destinations.append(Destination(dest, url, enabled is not False, key))
    _local_refusal(problems)
    return Creation(namespace, name, bool(hls), tuple(destinations))


def _done(writer: Writer, answer: Obj, status: int = 200) -> web.Response:
    """The answer to a change made, with admission's warnings (each once)."""
    return web.json_response({**answer, "warnings": writer.relevant_warnings()},
                             status=status)  # fmt: skip


async def create_livestream(request: web.Request) -> web.Response:
    form = _creation(await _body(request))
    writer = _writer(request)
    await asyncio.to_thread(writer.create, form)
    return _done(writer, {"namespace": form.namespace, "name": form.name}, 201)


async def _destination_write(
    request: web.Request, read: Callable[[Obj, dict[str, str]], Destination]
) -> web.Response:
    """A PUT or PATCH of one destination: ``read`` takes the fields from the body,
    noting its problems; nothing is sent to the API server while there are any."""
    namespace, name = _object_name(request)
    dest = _destination_name(request)
    problems: dict[str, str] = {}
    body = await _body(request)
    take_over = _flag(body, "takeOver", "takeOver", problems) is True
    wanted = replace(read(body, problems), name=dest, take_over=take_over)
    _local_refusal(problems)
    writer = _writer(request)
    await asyncio.to_thread(writer.put, namespace, name, wanted)
    return _done(writer, {"namespace": namespace, "name": name, "destination": dest})


def _edit(body: Obj, problems: dict[str, str]) -> Destination:
    url = _string(body, "serverUrl", "serverUrl", problems)  # None: keep it (an edit)
    enabled = _flag(body, "enabled", "enabled", problems)
    return Destination("", url, enabled, _key(body, "streamKey", problems, required=False))


def _toggle(body: Obj, problems: dict[str, str]) -> Destination:
    enabled = _flag(body, "enabled", "enabled", problems)
    if enabled is None and "enabled" not in problems:
        problems["enabled"] = "Say whether the destination is enabled (true or false)."
    return Destination("", enabled=enabled, may_add=False)


async def put_destination(request: web.Request) -> web.Response:
    return await _destination_write(request, _edit)


async def patch_destination(request: web.Request) -> web.Response:
    return await _destination_write(request, _toggle)


async def delete_destination(request: web.Request) -> web.Response:
    namespace, name = _object_name(request)
    dest = _destination_name(request)
    writer = _writer(request)
    await asyncio.to_thread(writer.remove, namespace, name, dest)
    return _done(writer, {"namespace": namespace, "name": name, "destination": dest})


async def defaults(request: web.Request) -> web.Response:
    """What the creation form starts from: the viewer's kubeconfig namespace."""
    return web.json_response({"namespace": server.viewer_of(request).namespace})


def _writer(request: web.Request) -> Writer:
    """The writes of whom this request acts for (locally, who started the console; in a
    cluster, the session's viewer with their own token)."""
    return Writer(server.viewer_of(request).kube)


async def new_page(request: web.Request) -> web.Response:
    return server._file(request, "new.html")


def register(app: web.Application) -> None:
    """The change endpoints and the creation page, on the console's app (its guard
    checks every request before these run: a session, and for a change the console's
    own Origin)."""
    app.router.add_get("/new", new_page)
    app.router.add_get("/api/changes/defaults", defaults)
    app.router.add_post("/api/livestreams", _answering(create_livestream))
    destination = "/api/livestreams/{namespace}/{name}/restreams/{dest}"
    app.router.add_put(destination, _answering(put_destination))
    app.router.add_patch(destination, _answering(patch_destination))
    app.router.add_delete(destination, _answering(delete_destination))
