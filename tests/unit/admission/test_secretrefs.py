"""Referenced Secrets: a missing Secret or key warns, an unknown answer does not."""

from __future__ import annotations

import time

from restream_operator.admission import SecretRef, SecretState
from restream_operator.admission.check import Check, ReferencedSecret
from restream_operator.admission.secretrefs import check_secrets
from tests.unit.admission.helpers import (
    REF,
    SETTINGS,
    check,
    livestream,
    restream,
    warnings_on,
)


def test_a_missing_secret_warns_and_an_unknown_answer_does_not() -> None:
    obj = livestream(restream(), streamKeySecretRef={"name": "launch-ingest"})
    asked: list[SecretRef] = []

    def lookup(ref: SecretRef) -> SecretState | None:
        asked.append(ref)
        return {"yt": SecretState.MISSING, "launch-ingest": None}[ref.name]

    result = check(obj, secrets=lookup)
    assert result.allowed
    # Each with its namespace and key (the ingest's key defaults as in the schema).
    assert sorted(asked, key=lambda r: r.name) == [
        SecretRef(namespace="media", name="launch-ingest", key="streamKey"),
        SecretRef(namespace="media", name="yt", key="key"),
    ]
    assert warnings_on(result, REF + ".name") == [
        'Secret "yt" does not exist yet in namespace "media": the relay will wait for it'
    ]
    assert not warnings_on(result, "spec.streamKeySecretRef.name")


def test_a_secret_without_the_key_warns_on_the_key_and_a_present_one_does_not() -> None:
    obj = livestream(restream(), streamKeySecretRef={"name": "launch-ingest", "key": "k"})
    answers = {"yt": SecretState.NO_KEY, "launch-ingest": SecretState.PRESENT}
    result = check(obj, secrets=lambda ref: answers[ref.name])
    assert result.allowed
    assert [(w.field, w.message) for w in result.warnings] == [
        (
            REF + ".key",
            'Secret "yt" has no key "key" yet in namespace "media": the relay will wait for it',
        )
    ]


def test_a_failing_secret_lookup_is_no_warning_and_the_request_namespace_wins() -> None:
    asked: list[SecretRef] = []

    def lookup(ref: SecretRef) -> SecretState | None:
        asked.append(ref)
        raise OSError("apiserver down")

    result = check(livestream(restream()), secrets=lookup, namespace="other")
    assert result.allowed and not result.warnings
    # Asked, in the request's namespace (not the object's "media"): the failure is why
    # there is no warning.
    assert asked == [SecretRef(namespace="other", name="yt", key="key")]


def test_invalid_references_are_not_looked_up() -> None:
    asked: list[SecretRef] = []

    def lookup(ref: SecretRef) -> SecretState | None:
        asked.append(ref)
        return SecretState.MISSING

    obj = livestream(restream(streamKeySecretRef={"name": "Bad_Name"}))
    assert not check(obj, secrets=lookup).allowed
    assert asked == []


def test_secret_reads_stop_at_their_budget() -> None:
    asked: list[SecretRef] = []

    def slow(ref: SecretRef) -> SecretState | None:
        asked.append(ref)
        time.sleep(0.2)
        return SecretState.MISSING

    check_ = Check(SETTINGS, "media")
    for i in range(5):
        check_.secrets.append(ReferencedSecret(f"f{i}", f"s{i}", "k", "the relay"))
    check_secrets(check_, slow, budget=0.3)
    assert len(asked) == 2
    assert len(check_.warnings) == 2
