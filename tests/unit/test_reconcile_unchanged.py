"""When a child is not applied again: the digest it carries, and who else wrote it."""

from __future__ import annotations

import copy
from typing import Any

from restream_operator.kube import FIELD_MANAGER
from restream_operator.reconcile import applied_digest, stamped, unchanged
from restream_operator.views import ANNOTATION_APPLIED, fingerprint, foreign_writers, held_view


def service(port: int = 1935) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "show-ingest", "namespace": "ns", "annotations": {"a": "b"}},
        "spec": {"ports": [{"port": port}]},
    }


def on_server(desired: dict[str, Any], *managers: tuple[str, str | None]) -> dict[str, Any]:
    """``desired`` as the API server returns it: with server-side fields and the
    managedFields entries of ``managers`` (name, subresource)."""
    obj = copy.deepcopy(desired)
    obj["metadata"].update(resourceVersion="7", uid="u-1")
    obj["metadata"]["managedFields"] = [
        {
            "manager": m,
            "operation": "Apply" if m == FIELD_MANAGER else "Update",
            **({"subresource": sub} if sub else {}),
        }
        for m, sub in managers
    ]
    obj["spec"]["clusterIP"] = "10.96.0.10"
    return obj


def test_the_digest_covers_what_is_applied_and_not_itself() -> None:
    a = stamped(service())
    assert a["metadata"]["annotations"][ANNOTATION_APPLIED] == applied_digest(a)
    assert applied_digest(stamped(a)) == applied_digest(a)
    assert applied_digest(service(1936)) != applied_digest(service())
    assert service()["metadata"]["annotations"] == {"a": "b"}  # the input is left alone


def test_after_a_restart_a_child_only_the_operator_wrote_is_unchanged() -> None:
    desired = stamped(service())
    before = on_server(desired, (FIELD_MANAGER, None), ("kube-controller-manager", None))
    assert unchanged(desired, held_view(before), None)
    assert not unchanged(stamped(service(1936)), held_view(before), None)


def test_someone_elses_write_makes_it_changed_but_status_writers_do_not() -> None:
    desired = stamped(service())
    edited = on_server(desired, (FIELD_MANAGER, None), ("kubectl-edit", None))
    assert foreign_writers(edited) == ["kubectl-edit"]
    assert not unchanged(desired, held_view(edited), None)
    status = on_server(desired, (FIELD_MANAGER, None), ("kwok", "status"))
    assert foreign_writers(status) == []
    assert unchanged(desired, held_view(status), None)


def test_a_child_without_the_annotation_is_applied() -> None:
    desired = stamped(service())
    older = on_server(service(), (FIELD_MANAGER, None))  # applied by an older operator
    assert not unchanged(desired, held_view(older), None)


def test_within_one_process_the_fingerprints_seen_decide() -> None:
    desired = stamped(service())
    before = on_server(desired, (FIELD_MANAGER, None))
    assert unchanged(desired, held_view(before), frozenset({fingerprint(before)}))
    assert not unchanged(desired, held_view(before), frozenset({"another"}))
