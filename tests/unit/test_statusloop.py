"""Why the status loop reconciles although the spec has not changed: repair_reason."""

from __future__ import annotations

from typing import Any

from restream_operator import rollout
from restream_operator.runtime import StreamState
from restream_operator.statusloop import REPAIR_AFTER_SECONDS, RETRY_AFTER_SECONDS, repair_reason
from restream_operator.views import ChildRef, ChildViews, Written

NOW = 1000.0
DEPLOY: ChildRef = ("Deployment", "launch-ingest")
POLICY: ChildRef = ("NetworkPolicy", "launch-relays")
SECRET: ChildRef = ("Secret", "launch-relay-x-key")  # applied, but not watched
WAITING = rollout.Pending("ingest", "launch-ingest", ("spec.x",), False)
LONG_AGO = REPAIR_AFTER_SECONDS + 1


def stream(reconciled_ago: float, pending: tuple[rollout.Pending, ...] = ()) -> StreamState:
    out = StreamState(reconciled_at=NOW - reconciled_ago, pending=pending)
    out.handled = {DEPLOY: frozenset({"a", "b"}), POLICY: frozenset({"p"}), SECRET: frozenset()}
    return out


def seen(deployment: str | None = "b", policy: str | None = "p") -> ChildViews:
    out = ChildViews()
    for ref, fp in ((DEPLOY, deployment), (POLICY, policy)):
        if fp is not None:
            out.put(Written(*ref, fp))
    return out


def reason(
    views: ChildViews, state: StreamState, broadcasting: bool = False, **annotations: str
) -> str | None:
    obj: dict[str, Any] = {"metadata": {"name": "launch", "annotations": annotations}}
    return repair_reason(obj, views, state, broadcasting, NOW)


def test_nothing_to_do_when_every_child_is_as_the_last_reconcile_left_it() -> None:
    assert reason(seen(), stream(LONG_AGO)) is None
    assert reason(seen(deployment="a"), stream(LONG_AGO)) is None  # the watch lags: before


def test_a_child_changed_by_someone_else_is_repaired_soon_but_not_in_a_loop() -> None:
    assert reason(seen(deployment="c"), stream(LONG_AGO)) == (
        "changed by someone else: Deployment/launch-ingest"
    )
    assert reason(seen(deployment="c"), stream(RETRY_AFTER_SECONDS - 1)) is None


def test_a_missing_child_waits_for_watch_events_still_on_their_way() -> None:
    assert reason(seen(policy=None), stream(REPAIR_AFTER_SECONDS - 1)) is None
    assert reason(seen(policy=None), stream(LONG_AGO)) == "missing: NetworkPolicy/launch-relays"


def test_a_child_seen_deleted_is_recreated_without_waiting_for_the_watch() -> None:
    views = seen()
    views.drop(*POLICY)
    assert views.gone == {POLICY}
    assert reason(views, stream(RETRY_AFTER_SECONDS + 0.1)) == (
        "missing: NetworkPolicy/launch-relays"
    )
    assert reason(views, stream(RETRY_AFTER_SECONDS - 1)) is None
    views.put(Written(*POLICY, "p"))
    assert not views.gone


def test_what_waited_goes_once_the_broadcast_is_over_or_when_forced() -> None:
    waiting = stream(LONG_AGO, pending=(WAITING,))
    assert reason(seen(), waiting, broadcasting=True) is None
    assert reason(seen(), waiting, broadcasting=False) == (
        "the broadcast is not on: applying what waited"
    )
    forced = {rollout.ANNOTATION_ROLLOUT: rollout.ROLLOUT_NOW}
    assert reason(seen(), waiting, True, **forced) == "restream.dev/rollout=now"
    assert reason(seen(), waiting, True, **{rollout.ANNOTATION_ROLLOUT: "later"}) is None
