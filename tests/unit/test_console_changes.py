"""The pure parts of the console's changes: what it owns of an object (read back from
managedFields), and where the API server's refusals belong in the form. The writes
themselves are tested against the real API server (tests/cluster_tests/
test_console_changes.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from restream_operator.console.changes import (
    Refusal,
    _creation,
    creation_field,
    destination_field,
    extract,
    field_messages,
    key_secret_name,
    owned_fields,
    owners_of_entry,
)
from restream_operator.kube import KubeError


def k(name: str) -> str:
    return "k:" + json.dumps({"name": name}, separators=(",", ":"))


OBJ: dict[str, Any] = {
    "apiVersion": "restream.dev/v1alpha1",
    "kind": "LiveStream",
    "metadata": {
        "name": "show",
        "namespace": "ns",
        "managedFields": [
            {"manager": "argocd-controller", "operation": "Apply",
             "fieldsV1": {"f:spec": {"f:restreams": {k("Youtube"): {
                 ".": {}, "f:name": {}, "f:serverUrl": {}}}}}},
            {"manager": "restream-console", "operation": "Apply",
             "fieldsV1": {"f:spec": {"f:playback": {".": {}, "f:hls": {}},
                                     "f:restreams": {k("Youtube"): {".": {}, "f:name": {},
                                                                    "f:enabled": {}},
                                                     k("Mine"): {}}}}},
            {"manager": "restream-console", "operation": "Update", "subresource": "",
             "fieldsV1": {"f:spec": {"f:suspend": {}}}},
        ],
    },
    "spec": {
        "playback": {"hls": True, "other": 1},
        "suspend": False,
        "restreams": [
            {"name": "Youtube", "serverUrl": "rtmp://y/x", "enabled": False,
             "streamKeySecretRef": {"name": "yt", "key": "streamKey"}},
            {"name": "Mine", "serverUrl": "rtmp://m/x", "enabled": True},
        ],
    },
}  # fmt: skip


def test_extract_gives_back_what_the_manager_applied_at_todays_values() -> None:
    assert extract(OBJ, owned_fields(OBJ)) == {
        "spec": {
            "playback": {"hls": True},  # not the field it does not own
            "restreams": [
                {"name": "Youtube", "enabled": False},
                {"name": "Mine", "serverUrl": "rtmp://m/x", "enabled": True},  # owned whole
            ],
        }
    }
    assert owned_fields(OBJ, "nobody") == {}
    assert owners_of_entry(OBJ, "Youtube") == {
        ("argocd-controller", "Apply"),
        ("restream-console", "Apply"),
    }
    assert owners_of_entry(OBJ, "Mine") == {("restream-console", "Apply")}


WEBHOOK = (
    'admission webhook "validate.livestreams.restream.dev" denied the request: 2 problems:\n'
    '- spec.restreams[1] ("A: \\"b\\"").serverUrl: host "127.0.0.1" is loopback: fix\n'
    "- metadata.name: is too long: shorten it"
)


def test_the_webhooks_and_the_crds_messages_go_to_the_fields_they_name() -> None:
    webhook = KubeError(422, "", WEBHOOK)
    assert field_messages(webhook, creation_field) == {
        "restreams[1].serverUrl": 'host "127.0.0.1" is loopback: fix',
        "name": "is too long: shorten it",
    }
    assert field_messages(webhook, destination_field(1)) == {
        "serverUrl": 'host "127.0.0.1" is loopback: fix'
    }
    assert field_messages(webhook, destination_field(0)) == {}
    cel = KubeError(
        422, "Invalid", 'LiveStream "x" is invalid: [...]',
        [{"field": "spec.restreams[0].serverUrl",
          "message": 'Invalid value: "http://x": serverUrl must start with rtmp://'},
         {"field": "spec.restreams[0]", "message": "Invalid value: set exactly one of"},
         {"field": "spec.restreams[0].streamKeySecretRef.name", "message": "bad name"}],
    )  # fmt: skip
    assert field_messages(cel, creation_field) == {
        "restreams[0].serverUrl": "serverUrl must start with rtmp://",
        "restreams[0]": "set exactly one of",
        "restreams[0].streamKey": "bad name",
    }
    assert field_messages(cel, destination_field(0)) == {
        "serverUrl": "serverUrl must start with rtmp://",
        "streamKey": "bad name",
    }


def test_the_form_is_checked_before_anything_is_sent_and_keys_are_never_echoed() -> None:
    with pytest.raises(Refusal) as refused:
        _creation(
            {
                "namespace": "ns",
                "name": "show",
                "playback": {"hls": "yes"},
                "restreams": [
                    {"name": "A", "serverUrl": "rtmp://a/b", "streamKey": "s3cr\u00e9t"},
                    {"name": "B", "serverUrl": "rtmp://a/b", "enabled": "no"},
                ],
            }
        )
    assert refused.value.status == 422
    fields = refused.value.fields or {}
    assert set(fields) == {
        "playback.hls", "restreams[0].streamKey", "restreams[1].streamKey",
        "restreams[1].enabled"}  # fmt: skip
    assert "s3cr" not in json.dumps(fields)
    form = _creation({"namespace": "ns", "name": "show", "restreams": [
        {"name": "A", "serverUrl": "rtmp://a/b", "streamKey": "k"}]})  # fmt: skip
    assert form.destinations[0].enabled is True and form.hls is False


def test_a_keys_secret_is_named_per_livestream_and_destination() -> None:
    names = {key_secret_name(ls, d) for ls in ("p", "p-relay-x") for d in ("y", "x-relay-y")}
    assert len(names) == 4
    assert key_secret_name("show", "My Twitch").startswith("show-relay-my-twitch-")
    assert len(key_secret_name("a" * 40, "é" * 64)) <= 253
