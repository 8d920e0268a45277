"""The reconcile path: make a LiveStream's children match its spec. The only one.

:func:`reconcile` is what every caller uses: the trigger of each new generation
(trigger.py) and the status loop's repair of missing children. It holds the
LiveStream's lock (the trigger runs reconciles in a pool of threads, the repair in
another: they never apply the same children at once), works from the newest object
the operator has seen, and does the same bookkeeping whoever called it: the reconciled
generation, the error, the missing Secrets, and the Events.

:func:`apply_children` does the work. It renders the children (pure), creates the
random Secrets once, server-side applies everything else with fixed names (a no-op on
the server when nothing changed), and deletes the relays and inline-key Secrets of
destinations that were removed or disabled. Each destination's objects depend only on
that destination, so the other destinations' objects are never rewritten. While the
LiveStream broadcasts, Deployments whose pod template would move for a reason other
than that destination's own change keep the template they run (rollout.py); what
waits is recorded, and the status loop reconciles again when the broadcast ends.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from . import admission, agentpoll, metrics, models, naming, rollout
from .kube import Kube, Obj
from .render import Owner, generated_secret, owner_from_object, render_children
from .runtime import Runtime, StreamState
from .secretrefs import MissingSecret, missing_secrets
from .settings import Settings
from .status import ReconcileFailure
from .views import ANNOTATION_APPLIED, ChildRef, Held, controller_of, fingerprint, held_view

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    applied: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)  # already as written: not written
    created: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    missing_secrets: list[MissingSecret] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)  # objects left alone: not ours
    pending: list[rollout.Pending] = field(default_factory=list)  # held: broadcasting
    rolled: list[str] = field(default_factory=list)  # "ingest" or restreams: pod replaced
    # (kind, name) -> the fingerprints before and after the write (views.fingerprint)
    handled: dict[ChildRef, frozenset[str]] = field(default_factory=dict)


def new_secret_value() -> str:
    """192 random bits, URL-safe: it becomes part of an RTMP URL."""
    return secrets.token_urlsafe(24)


def _ref(obj: Obj) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


def _owned_by(obj: Obj, uid: str) -> bool:
    return any(ref.get("uid") == uid for ref in obj["metadata"].get("ownerReferences", []))


def conflict(owner: Owner, kind: str, existing: Obj) -> str:
    """Who holds a name this LiveStream needs, or "" when it is this LiveStream."""
    controller = controller_of(existing)
    if controller is not None and controller.get("uid") == owner.uid:
        return ""
    name = existing["metadata"]["name"]
    if controller is None:
        holder = "an object this LiveStream does not own (created by someone else)"
    else:
        holder = f"{controller.get('kind')} {owner.namespace}/{controller.get('name')}"
    return (
        f"{kind}/{name}, which LiveStream {owner.namespace}/{owner.name} needs, belongs to "
        f"{holder}: it was left as it is; rename this LiveStream or the restream, or "
        "delete that object"
    )


class Known(Protocol):
    """What the operator's watches know of the names it applies to (Runtime): a child it
    can tell about needs no GET."""

    def knows(self, kind: str) -> bool:
        """Whether every object of ``kind`` is known, so that absence means free."""

    def holder(self, kind: str, namespace: str, name: str) -> Held | None: ...

    def relays(self, namespace: str, livestream: str) -> list[str]:
        """The relay Deployments the watches saw labelled as this LiveStream's."""


class InvalidSpec(ValueError):
    """The spec breaks the admission rules (stored while the webhook was down, or
    before the operator registered it): retrying cannot help until the spec changes."""


class NameConflict(RuntimeError):
    """Some children could not be applied: their names belong to another object."""


def check_rules(obj: dict[str, Any], settings: Settings) -> None:
    """The admission rules again, without DNS: nothing the webhook would refuse is
    applied, whatever way it was stored."""
    result = admission.review(obj, settings, resolver=None)
    if not result.allowed:
        raise InvalidSpec(f"{result.message()} (nothing of this spec is applied until it is fixed)")


def _uses_secret(deployment: Obj, secret: str) -> bool:
    containers = deployment.get("spec", {}).get("template", {}).get("spec", {}).get("containers")
    return any(
        ((env.get("valueFrom") or {}).get("secretKeyRef") or {}).get("name") == secret
        for c in containers or []
        for env in c.get("env") or []
    )


def _child(obj: Obj) -> str:
    """What a Deployment is, for people and for rollout.plan: "ingest", a restream, or
    "rendition <name>" (an encoder: its own spec change rolls at once, like a relay's)."""
    rendition = (obj["metadata"].get("annotations") or {}).get(naming.ANNOTATION_RENDITION_NAME)
    if rendition:
        return f"rendition {rendition}"
    return _restream_of(obj) or naming.COMPONENT_INGEST


def apply_children(
    owner: Owner,
    settings: Settings,
    kube: Kube,
    *,
    hold: bool = False,
    live_now: Callable[[], bool] | None = None,
    handled: dict[ChildRef, frozenset[str]] | None = None,
    known: Known | None = None,
) -> Outcome:
    """Applies every child whose name is free or ours and prunes what the spec dropped;
    a child whose name belongs to someone else is left alone and listed in
    ``conflicts``.

    ``hold``: the LiveStream broadcasts, so pod templates it did not ask for wait
    (rollout.py). ``live_now``: asked, when ``hold`` is false, right before a pod would
    be replaced: if it says a broadcast has just begun, everything is held after all.
    ``handled``: the previous reconcile's fingerprints of each child (none after a
    restart): a child that is as this reconcile would write it is not written again.
    ``known``: the watches' knowledge of the names: a child whose name it knows to be
    free, or to hold this child as it would be written, is not read first (a GET).
    """
    outcome = Outcome()
    children = render_children(owner, settings)

    def free_or_ours(obj: Obj) -> tuple[bool, Obj | None]:
        """Whether this LiveStream may write the child's name, and what holds it now."""
        found = kube.get(obj["kind"], owner.namespace, obj["metadata"]["name"])
        held_by = conflict(owner, obj["kind"], found) if found is not None else ""
        if held_by:
            outcome.conflicts.append(held_by)
        return not held_by, found

    # A LiveStream whose ingest nobody holds is new: its children of the kinds the
    # watches do not know (Secrets, the ConfigMap) are created without a read first. A
    # create never overwrites: a name someone holds answers 409, and is then read and
    # judged as any other. (Created, not applied: later applies by the same manager
    # take the fields over.)
    new = (
        known is not None
        and known.knows("Deployment")
        and (known.holder("Deployment", owner.namespace, naming.ingest_name(owner.name)) is None)
    )
    for name, data_key in children.generated.items():
        secret = generated_secret(owner, name, data_key, new_secret_value())
        if new and kube.create_if_absent(secret):
            outcome.created.append(_ref(secret))
            continue
        writable, found = free_or_ours(secret)
        if writable and found is None and kube.create_if_absent(secret):
            outcome.created.append(_ref(secret))

    handled = handled or {}
    targets: list[tuple[Obj, Obj | None]] = []
    for obj in children.applied:
        kind, name = obj["kind"], obj["metadata"]["name"]
        if known is not None and known.knows(kind):
            holder = known.holder(kind, owner.namespace, name)
            # Nobody holds the name: nothing to read. Unless a broadcast is on and this
            # is a Deployment: a watch event not yet arrived must never make a running
            # pod's template look new (and so not held).
            if holder is None and not (hold and kind == "Deployment"):
                targets.append((obj, None))
                continue
            seen = handled.get((kind, name))
            if (
                holder is not None
                and holder.controller_uid == owner.uid
                and unchanged(stamped(obj), holder, seen)
            ):
                outcome.unchanged.append(_ref(obj))
                outcome.handled[(kind, name)] = (seen or frozenset()) | {holder.fingerprint}
                continue
        elif new and (created := kube.create(stamped(obj))) is not None:
            outcome.applied.append(_ref(obj))
            outcome.handled[(kind, name)] = frozenset({fingerprint(created)})
            continue
        writable, before = free_or_ours(obj)
        if writable:
            targets.append((obj, before))

    def plans(hold: bool) -> dict[str, rollout.Plan]:
        return {
            obj["metadata"]["name"]: rollout.plan(obj, before, hold=hold, child=_child(obj))
            for obj, before in targets
            if obj["kind"] == "Deployment"
        }

    planned = plans(hold)
    if not hold and live_now is not None:
        # Only what a broadcast would hold makes the question worth an agent's round trip.
        held = plans(True)
        if any(p.pending for p in held.values()) and live_now():
            planned = held
    _apply(owner, kube, targets, planned, outcome, handled)
    _prune_relays(owner, kube, children.applied, outcome, known)
    outcome.missing_secrets = find_missing_secrets(owner, kube)
    return outcome


def applied_digest(obj: Obj) -> str:
    """What the operator writes of a child, as a digest (the child's ANNOTATION_APPLIED)."""
    annotations = dict(obj["metadata"].get("annotations") or {})
    annotations.pop(ANNOTATION_APPLIED, None)
    return rollout.digest({**obj, "metadata": {**obj["metadata"], "annotations": annotations}})


def stamped(obj: Obj) -> Obj:
    meta = obj["metadata"]
    annotations = {**(meta.get("annotations") or {}), ANNOTATION_APPLIED: applied_digest(obj)}
    return {**obj, "metadata": {**meta, "annotations": annotations}}


def unchanged(desired: Obj, before: Held, seen: frozenset[str] | None) -> bool:
    """Whether writing ``desired`` (stamped) would change nothing ``before`` has: it
    carries the same digest of what the operator wrote, and nobody changed it since.
    ``seen``: the fingerprints around the last write this operator made (None since a
    restart: then only the managed fields can tell that nobody else wrote)."""
    if before.applied != desired["metadata"]["annotations"][ANNOTATION_APPLIED]:
        return False
    if seen is not None:
        return before.fingerprint in seen
    return not before.foreign


def _apply(
    owner: Owner,
    kube: Kube,
    targets: list[tuple[Obj, Obj | None]],
    planned: dict[str, rollout.Plan],
    outcome: Outcome,
    handled: dict[ChildRef, frozenset[str]],
) -> None:
    """Applies each (desired, as it is now) pair; Deployments as ``planned`` says. One
    that is already as it would be written is not written again: a restart, or a change
    to one destination, writes nothing for the others."""
    ingest = planned.get(naming.ingest_name(owner.name))
    ingest_held = ingest is not None and ingest.pending is not None
    for desired, before in targets:
        kind, name = desired["kind"], desired["metadata"]["name"]
        if kind == "ConfigMap" and ingest_held and before is not None:
            continue  # the held ingest pod reads it when it restarts: it stays as it was
        obj: Obj | None = desired
        if kind == "Deployment":
            plan = planned[name]
            if plan.pending is not None:
                outcome.pending.append(plan.pending)
            if plan.replaces_pod and before is not None:
                outcome.rolled.append(_child(desired))
            obj = plan.apply
        if obj is None:
            continue
        obj = stamped(obj)
        if before is not None and unchanged(obj, held_view(before), handled.get((kind, name))):
            outcome.unchanged.append(_ref(obj))
            outcome.handled[(kind, name)] = handled.get((kind, name), frozenset()) | {
                fingerprint(before)
            }
            continue
        after = kube.apply(obj)
        outcome.applied.append(_ref(obj))
        outcome.handled[(kind, name)] = frozenset(
            fingerprint(o) for o in (before, after) if o is not None and o.get("metadata")
        )
        restream = _restream_of(obj)
        if before is not None and kind == "Deployment" and restream:
            # The destination moved its key from inline to a Secret of the user's: the
            # inline copy goes.
            inline = naming.inline_key_secret(owner.name, restream)
            if _uses_secret(before, inline) and not _uses_secret(obj, inline):
                _delete_key_secret(owner, kube, inline, outcome)


def _relays(owner: Owner, kube: Kube, known: Known | None) -> dict[str, str | None]:
    """This LiveStream's relay Deployments, by name, with their controller's uid."""
    if known is not None and known.knows("Deployment"):
        return {
            name: held.controller_uid
            for name in known.relays(owner.namespace, owner.name)
            if (held := known.holder("Deployment", owner.namespace, name)) is not None
        }
    out: dict[str, str | None] = {}
    for component in (naming.COMPONENT_RELAY, naming.COMPONENT_ENCODER):
        selector = {
            naming.LABEL_LIVESTREAM: owner.name,
            naming.LABEL_COMPONENT: component,
            naming.LABEL_MANAGED_BY: naming.MANAGED_BY,
        }
        for relay in kube.list("Deployment", owner.namespace, selector):
            out[relay["metadata"]["name"]] = held_view(relay).controller_uid
    return out


def _prune_relays(
    owner: Owner, kube: Kube, applied: list[Obj], outcome: Outcome, known: Known | None
) -> None:
    """Deletes the relays (and inline-key Secrets) of destinations the spec dropped, and
    the encoders of renditions no enabled destination uses any more."""
    desired = {obj["metadata"]["name"] for obj in applied if obj["kind"] == "Deployment"}
    for name, controller in _relays(owner, kube, known).items():
        if name in desired or controller != owner.uid:
            continue
        # Its inline key first: the running pod keeps what it read, and a Secret is never
        # left behind by a relay already gone. Named, not listed: the operator may not
        # list Secrets (it would see every Secret of the cluster).
        _delete_key_secret(owner, kube, f"{name}-key", outcome)
        if kube.delete("Deployment", owner.namespace, name):
            outcome.deleted.append(f"Deployment/{name}")


def _restream_of(obj: Obj) -> str:
    return str((obj["metadata"].get("annotations") or {}).get(naming.ANNOTATION_RESTREAM_NAME, ""))


def _delete_key_secret(owner: Owner, kube: Kube, name: str, outcome: Outcome) -> None:
    secret = kube.get("Secret", owner.namespace, name)
    if secret is None or not _owned_by(secret, owner.uid):
        return
    labels = secret["metadata"].get("labels") or {}
    if labels.get(naming.LABEL_COMPONENT) == naming.COMPONENT_KEYS and kube.delete(
        "Secret", owner.namespace, name
    ):
        outcome.deleted.append(f"Secret/{name}")


def find_missing_secrets(owner: Owner, kube: Kube) -> list[MissingSecret]:
    return missing_secrets(owner.spec, lambda name: kube.get("Secret", owner.namespace, name))


def reconcile(runtime: Runtime, obj: dict[str, Any], cause: str) -> Outcome | None:
    """Brings one LiveStream's children to its spec; None when it is being deleted.

    ``obj``: the LiveStream as the caller saw it (the newest one seen is used).
    ``cause``: why, for the log (create, update, resume, repair). Raises what applying
    raised, after recording it (InvalidSpec: retrying will not help).
    """
    uid = obj["metadata"]["uid"]
    with runtime.lock(uid):
        obj = runtime.newest(obj)
        if obj["metadata"].get("deletionTimestamp"):
            return None
        metrics.RECONCILES.labels(metrics.cause_label(cause)).inc()
        started = time.monotonic()
        try:
            return _reconcile_locked(runtime, obj, cause)
        except Exception:
            failure = runtime.stream(uid).reconcile_failure
            reason = failure.reason if failure is not None else "ReconcileFailed"
            metrics.RECONCILE_ERRORS_TOTAL.labels(reason).inc()
            raise
        finally:
            metrics.RECONCILE_DURATION.observe(time.monotonic() - started)
            runtime.wake(uid)  # its status tells what happened, now rather than next tick


def _reconcile_locked(runtime: Runtime, obj: dict[str, Any], cause: str) -> Outcome:
    meta = obj["metadata"]
    where = f"{meta.get('namespace')}/{meta.get('name')}"
    state = runtime.stream(meta["uid"])
    generation = int(meta.get("generation") or 0)
    settings = runtime.settings
    forced = (meta.get("annotations") or {}).get(rollout.ANNOTATION_ROLLOUT) == rollout.ROLLOUT_NOW
    defer = settings.defer_updates_while_broadcasting and not forced
    try:
        check_rules(obj, settings)  # before parsing: it says what is wrong
        owner = owner_from_object(obj)
        outcome = apply_children(
            owner,
            settings,
            runtime.kube,
            hold=defer and runtime.broadcasting(obj),
            live_now=(lambda: agentpoll.publishing_now(runtime, owner) is True) if defer else None,
            handled=state.handled,
            known=runtime,
        )
    except InvalidSpec as exc:
        failure = ReconcileFailure("InvalidSpec", str(exc))
        if state.reconcile_failure != failure:  # once per verdict, not per retry
            runtime.events.post(obj, "Warning", "InvalidSpec", message=str(exc))
        state.reconcile_failure = failure
        raise
    except Exception as exc:
        state.reconcile_failure = ReconcileFailure("ReconcileFailed", f"reconcile failed: {exc}")
        log.error(f"{where}: {cause}: reconcile failed: {exc}")
        raise
    state.reconcile_failure = None
    state.reconciled_generation = generation
    state.reconciled_at = time.monotonic()
    state.missing_secrets = tuple(outcome.missing_secrets)
    state.handled = dict(outcome.handled)
    _report_rollout(runtime, obj, state, outcome, forced)
    for ref in outcome.created:
        log.info(f"{where}: created {ref}")
    for ref in outcome.deleted:
        runtime.events.post(obj, "Normal", "Deleted", message=f"deleted {ref}")
    if outcome.missing_secrets:
        message = "; ".join(map(str, outcome.missing_secrets))
        runtime.events.post(obj, "Warning", "SecretMissing", message=message)
    log.info(
        f"{where}: {cause}: reconciled generation {generation}: "
        f"{len(outcome.applied)} applied, {len(outcome.unchanged)} unchanged, "
        f"{len(outcome.deleted)} deleted, "
        f"pods replaced: {', '.join(outcome.rolled) or 'none'}, "
        f"{len(outcome.pending)} waiting for the broadcast to end"
    )
    if outcome.conflicts:
        message = "; ".join(outcome.conflicts)
        state.reconcile_failure = ReconcileFailure("NameConflict", message)
        runtime.events.post(obj, "Warning", "NameConflict", message=message)
        raise NameConflict(message)  # retried (trigger.py): the other object may go
    return outcome


def _report_rollout(
    runtime: Runtime, obj: dict[str, Any], state: StreamState, outcome: Outcome, forced: bool
) -> None:
    """Events when pod templates start waiting and when what waited is applied; the
    one-shot rollout annotation removed once it has done its work."""
    before, state.pending = state.pending, tuple(outcome.pending)
    waiting = {p.child for p in state.pending}
    if waiting - {p.child for p in before}:
        message = "waiting for the broadcast to end: " + "; ".join(map(str, state.pending))
        runtime.events.post(obj, "Normal", "UpdatePending", message=message)
    applied = sorted({p.child for p in before} - waiting)
    if applied:
        why = "restream.dev/rollout=now" if forced else "the broadcast is not on"
        runtime.events.post(
            obj, "Normal", "UpdateApplied", message=f"applied ({why}): {', '.join(applied)}"
        )
    if forced and not state.pending:
        meta = obj["metadata"]
        runtime.kube.patch(
            models.KIND,
            meta["namespace"],
            meta["name"],
            {"metadata": {"annotations": {rollout.ANNOTATION_ROLLOUT: None}}},
        )
