"""When a LiveStream's pods may be replaced: not on the operator's own account while it
broadcasts.

A new operator version, media image or operator setting changes how every ingest and
relay pod is rendered; applied at once, it would replace every pod of every LiveStream
and cut every broadcast on the cluster. Like Agones, which never restarts an allocated
game server on a fleet update, the operator keeps a broadcasting LiveStream's pods as
they are and applies the new rendering once the broadcast has ended.

To know what it applied last, whatever operator version did it, each Deployment carries
on its own metadata (never on the pod template: that would move the pods):

- ``restream.dev/pod-template``: the pod template last applied, as canonical JSON;
- ``restream.dev/spec-inputs``: a digest of the spec fields that template came from.

While held, the Deployment is still applied, with the recorded template: replicas,
labels and the rest follow the spec at once, and a hand edit of the template is undone
(the edit has already replaced the pod, so restoring it interrupts nothing more). A
change the user made in the spec rolls at once when it touches one relay only (that
destination's own change); one that needs the ingest pod replaced waits like the
operator's own, because replacing the ingest disconnects the encoder.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]

ANNOTATION_POD_TEMPLATE = "restream.dev/pod-template"
ANNOTATION_SPEC_INPUTS = "restream.dev/spec-inputs"
# On a LiveStream: apply what is waiting now, broadcast or not. One-shot: the operator
# removes it once applied.
ANNOTATION_ROLLOUT = "restream.dev/rollout"
ROLLOUT_NOW = "now"
_MAX_CHANGES_SHOWN = 6


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def digest(value: Any) -> str:
    return hashlib.sha256(canonical(value).encode()).hexdigest()[:16]


def stamp(deployment: Obj, spec_inputs: Any) -> Obj:
    """Records, on the Deployment's metadata, its pod template and where it came from."""
    annotations = deployment["metadata"].setdefault("annotations", {})
    annotations[ANNOTATION_POD_TEMPLATE] = canonical(deployment["spec"]["template"])
    annotations[ANNOTATION_SPEC_INPUTS] = digest(spec_inputs)
    return deployment


@dataclass(frozen=True)
class Pending:
    """A Deployment whose new pod template waits for the broadcast to end."""

    child: str  # "ingest", or the restream's name
    deployment: str
    changes: tuple[str, ...]  # where the templates differ, e.g. containers[relay].image
    spec_change: bool  # the LiveStream's spec asked for it (the ingest only)

    def __str__(self) -> str:
        if self.child == "ingest" or self.child.startswith("rendition "):
            what = self.child  # the ingest, or "rendition 720p" (its encoder)
        else:
            what = f"relay {self.child!r}"
        shown = list(self.changes[:_MAX_CHANGES_SHOWN])
        if len(self.changes) > _MAX_CHANGES_SHOWN:
            shown.append(f"{len(self.changes) - _MAX_CHANGES_SHOWN} more")
        why = "spec change" if self.spec_change else "operator update"
        return f"{what} ({why}: {', '.join(shown) or 'pod template'})"


@dataclass(frozen=True)
class Plan:
    """What to do with one Deployment: apply ``apply`` (None: leave it as it is)."""

    apply: Obj | None
    pending: Pending | None = None
    replaces_pod: bool = False  # applying it moves the pod template


def _annotations(obj: Obj) -> dict[str, str]:
    return dict(obj["metadata"].get("annotations") or {})


def recorded_template(deployment: Obj) -> Obj | None:
    """The pod template the operator last applied to this Deployment, if it says."""
    text = _annotations(deployment).get(ANNOTATION_POD_TEMPLATE)
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def plan(desired: Obj, before: Obj | None, *, hold: bool, child: str) -> Plan:
    """Whether ``desired`` (rendered and stamped) may replace ``before`` (as it is on
    the server; None: there is none) now. ``hold``: the LiveStream is broadcasting and
    nothing overrides the deferral. ``child``: "ingest" or the restream's name."""
    if before is None:
        return Plan(desired)
    recorded = recorded_template(before)
    new = desired["spec"]["template"]
    if recorded is not None and canonical(recorded) == canonical(new):
        return Plan(desired)
    if not hold:
        return Plan(desired, replaces_pod=True)
    name = desired["metadata"]["name"]
    inputs = _annotations(before).get(ANNOTATION_SPEC_INPUTS)
    asked = inputs != _annotations(desired)[ANNOTATION_SPEC_INPUTS]
    if recorded is None:
        # Applied by an operator that kept no record (an older version): nothing can be
        # compared, so nothing of it is touched until the broadcast ends.
        return Plan(None, Pending(child, name, (), asked))
    if asked and child != "ingest":
        return Plan(desired, replaces_pod=True)  # this destination's own change: rolls now
    held = copy.deepcopy(desired)
    held["spec"]["template"] = recorded
    held["metadata"]["annotations"][ANNOTATION_POD_TEMPLATE] = canonical(recorded)
    held["metadata"]["annotations"][ANNOTATION_SPEC_INPUTS] = inputs
    return Plan(held, Pending(child, name, tuple(changed_paths(recorded, new)), asked))


def changed_paths(old: Any, new: Any, path: str = "") -> list[str]:
    """Where two pod templates differ, for people: lists of named items (containers,
    env, volumes) are compared by name; a leaf or any other list is one change."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for key in sorted(set(old) | set(new)):
            sub = f"{path}.{key}" if path else str(key)
            if key not in old or key not in new:
                out.append(sub)
            else:
                out.extend(changed_paths(old[key], new[key], sub))
        return out
    if _named(old) and _named(new):
        before = {item["name"]: item for item in old}
        after = {item["name"]: item for item in new}
        out = []
        for name in sorted(set(before) | set(after)):
            sub = f"{path}[{name}]"
            if name not in before or name not in after:
                out.append(sub)
            else:
                out.extend(changed_paths(before[name], after[name], sub))
        return out
    return [] if canonical(old) == canonical(new) else [path]


def _named(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(item, dict) and isinstance(item.get("name"), str) for item in value
    )
