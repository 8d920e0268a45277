"""What the API server enforces by itself, with the webhook down: every CEL rule of the
CRD, held to the same verdict as the Python rules, and the schema's defaults.

Each CEL rule exists twice, in the CRD (so that nothing invalid is stored while the
webhook is down) and in the admission package (better messages): for every rule the
generated CRD holds, an input that violates it is refused both by the real API server
(with that rule's message) and by ``review()`` (on the same field). A new rule without
a case here fails the test.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from hack.localcluster.controlplane import LocalCluster
from restream_operator import admission, crd, models
from restream_operator.settings import Settings

pytestmark = pytest.mark.cluster


@dataclass(frozen=True)
class CelRule:
    path: str  # where the rule sits in the CRD schema, e.g. spec.restreams[]
    rule: str
    message: str
    field_path: str  # the rule's fieldPath, e.g. .streamKey ("" when none)

    @property
    def location(self) -> str:
        return f"{self.path}{self.field_path}"


def _cel_rules(node: dict[str, Any], path: str = "") -> Iterator[CelRule]:
    for v in node.get("x-kubernetes-validations") or ():
        yield CelRule(path, v["rule"], v["message"], v.get("fieldPath", ""))
    for name, child in (node.get("properties") or {}).items():
        yield from _cel_rules(child, f"{path}.{name}".lstrip("."))
    if "items" in node:
        yield from _cel_rules(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _cel_rules(node["additionalProperties"], f"{path}{{}}")


CRD_SCHEMA = crd.custom_resource_definition()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
RULES = list(_cel_rules(CRD_SCHEMA))


def livestream(spec: dict[str, Any], name: str = "show") -> dict[str, Any]:
    return {
        "apiVersion": models.API_VERSION,
        "kind": models.KIND,
        "metadata": {"name": name},
        "spec": spec,
    }


def destination(**fields: Any) -> dict[str, Any]:
    """A valid destination with ``fields`` changed (None: left out)."""
    entry = {
        "name": "Youtube",
        "serverUrl": "rtmps://a.rtmps.youtube.com/live2",
        "streamKeySecretRef": {"name": "yt", "key": "key"},
        **fields,
    }
    return {k: v for k, v in entry.items() if v is not None}


def one(**fields: Any) -> dict[str, Any]:
    return livestream({"restreams": [destination(**fields)]})


# (rule path, start of its message) -> an object violating that rule alone, and the field
# (indexes and labels as []) the Python rules refuse.
CASES: dict[tuple[str, str], tuple[dict[str, Any], str]] = {
    ("", "metadata.name must be at most"): (
        livestream({}, name="launch.v2"),
        "metadata.name",
    ),
    ("spec", "restreams[].name must be unique"): (
        livestream(
            {
                "restreams": [
                    {"name": "Youtube", "serverUrl": "rtmp://a.example.com/x", "streamKey": "k"},
                    {"name": "YOUTUBE", "serverUrl": "rtmp://b.example.com/x", "streamKey": "k"},
                ]
            }
        ),
        "spec.restreams[].name",
    ),
    ("spec", "restreams[].rendition must name one of spec.renditions"): (
        livestream({"restreams": [destination(rendition="720p")]}),
        "spec.restreams[].rendition",
    ),
    ("spec.renditions[].video", "maxBitrateKbps must be at least bitrateKbps"): (
        livestream(
            {
                "renditions": [
                    {
                        "name": "720p",
                        "video": {"height": 720, "bitrateKbps": 3000, "maxBitrateKbps": 2000},
                    }
                ]
            }
        ),
        "spec.renditions[].video.maxBitrateKbps",
    ),
    ("spec.renditions[].video.height", "height must be even"): (
        livestream(
            {"renditions": [{"name": "720p", "video": {"height": 719, "bitrateKbps": 3000}}]}
        ),
        "spec.renditions[].video.height",
    ),
    ("spec.streamKeySecretRef.name", "name must be a Secret name"): (
        livestream({"streamKeySecretRef": {"name": "Launch_Key"}}),
        "spec.streamKeySecretRef.name",
    ),
    ("spec.ingest", "protocols must keep one way in for encoders"): (
        livestream({"ingest": {"srt": {}, "protocols": ["RTMPS"]}}),
        "spec.ingest.protocols",
    ),
    ("spec.ingest.tls.secretRef.name", "name must be a Secret name"): (
        livestream({"ingest": {"tls": {"secretRef": {"name": "Ingest_TLS"}}}}),
        "spec.ingest.tls.secretRef.name",
    ),
    ("spec.streamKeySecretRef.key", "key must be a Secret key"): (
        livestream({"streamKeySecretRef": {"name": "launch-key", "key": "a b"}}),
        "spec.streamKeySecretRef.key",
    ),
    ("spec.relay.reconnect", "minDelaySeconds must not exceed"): (
        livestream({"relay": {"reconnect": {"minDelaySeconds": 20, "maxDelaySeconds": 10}}}),
        "spec.relay.reconnect",
    ),
    ("spec.restreams[]", "set exactly one of streamKey"): (
        one(streamKey="k"),
        "spec.restreams[]",
    ),
    ("spec.restreams[]", "streamKey must be printable"): (
        one(streamKey="live key", streamKeySecretRef=None),
        "spec.restreams[].streamKey",
    ),
    ("spec.restreams[].name", "name must not contain control"): (
        one(name="My\tTwitch"),
        "spec.restreams[].name",
    ),
    ("spec.restreams[].name", "name must not start or end with whitespace"): (
        one(name=" Youtube"),
        "spec.restreams[].name",
    ),
    ("spec.restreams[].serverUrl", "serverUrl must start with"): (
        one(serverUrl="http://a.example.com/x"),
        "spec.restreams[].serverUrl",
    ),
    ("spec.restreams[].serverUrl", "serverUrl must not contain"): (
        one(serverUrl="rtmp://a.example.com/x;y"),
        "spec.restreams[].serverUrl",
    ),
    ("spec.restreams[].serverUrl", "serverUrl must be scheme://host"): (
        one(serverUrl="rtmp://user@a.example.com/x"),
        "spec.restreams[].serverUrl",
    ),
    ("spec.restreams[].serverUrl", "an srt:// serverUrl needs a port"): (
        one(serverUrl="srt://srt.example.com"),
        "spec.restreams[].serverUrl",
    ),
    ("spec.restreams[].serverUrl", "an srt:// serverUrl may only set these options"): (
        one(serverUrl="srt://srt.example.com:9000?latency=200000&mode=listener"),
        "spec.restreams[].serverUrl",
    ),
    ("spec.restreams[].streamKeySecretRef.name", "name must be a Secret name"): (
        one(streamKeySecretRef={"name": "Bad_Name"}),
        "spec.restreams[].streamKeySecretRef.name",
    ),
    ("spec.restreams[].streamKeySecretRef.key", "key must be a Secret key"): (
        one(streamKeySecretRef={"name": "yt", "key": "a b"}),
        "spec.restreams[].streamKeySecretRef.key",
    ),
    ("spec.restreams[]", "tls applies to rtmps:// destinations only"): (
        one(serverUrl="rtmp://a.example.com/x", tls={"caSecretRef": {"name": "ca"}}),
        "spec.restreams[].tls",
    ),
    ("spec.restreams[]", "srt applies to srt:// destinations only"): (
        one(srt={"passphraseSecretRef": {"name": "pw"}}),
        "spec.restreams[].srt",
    ),
    ("spec.restreams[].tls", "set caSecretRef or insecureSkipVerify: true, not both"): (
        one(tls={"caSecretRef": {"name": "ca"}, "insecureSkipVerify": True}),
        "spec.restreams[].tls",
    ),
    ("spec.restreams[].tls.caSecretRef.name", "name must be a Secret name"): (
        one(tls={"caSecretRef": {"name": "Bad_CA"}}),
        "spec.restreams[].tls.caSecretRef.name",
    ),
    ("spec.restreams[].tls.caSecretRef.key", "key must be a Secret key"): (
        one(tls={"caSecretRef": {"name": "ca", "key": "a b"}}),
        "spec.restreams[].tls.caSecretRef.key",
    ),
    ("spec.restreams[].srt.passphraseSecretRef.name", "name must be a Secret name"): (
        one(serverUrl="srt://srt.example.com:9000", srt={"passphraseSecretRef": {"name": "P_W"}}),
        "spec.restreams[].srt.passphraseSecretRef.name",
    ),
    ("spec.restreams[].srt.passphraseSecretRef.key", "key must be a Secret key"): (
        one(
            serverUrl="srt://srt.example.com:9000",
            srt={"passphraseSecretRef": {"name": "pw", "key": "a b"}},
        ),
        "spec.restreams[].srt.passphraseSecretRef.key",
    ),
}


def _case(rule: CelRule) -> tuple[dict[str, Any], str]:
    found = [v for (p, m), v in CASES.items() if p == rule.path and rule.message.startswith(m)]
    assert len(found) == 1, f"no case (or several) for the CEL rule at {rule.path}: {rule.message}"
    return found[0]


def _generic(field: str) -> str:
    """spec.restreams[1] ("Twitch").name -> spec.restreams[].name"""
    return re.sub(r'\[\d+\](?: \("(?:[^"\\]|\\.)*"\))?', "[]", field)


def _dry_run(cluster: LocalCluster, namespace: str, obj: dict[str, Any]) -> Any:
    return cluster.kubectl(
        "apply", "-n", namespace, "--dry-run=server", "-f", "-", input=json.dumps(obj), check=False
    )


def test_every_case_is_for_a_rule_the_crd_has() -> None:
    for path, start in CASES:
        assert any(r.path == path and r.message.startswith(start) for r in RULES), (path, start)
    assert len(CASES) == len(RULES)


@pytest.mark.parametrize(
    "rule", RULES, ids=[f"{r.path or 'root'}: {r.message[:40]}" for r in RULES]
)
def test_the_api_server_and_the_python_rules_refuse_what_a_cel_rule_refuses(
    cluster: LocalCluster, namespace: str, webhook_down: None, rule: CelRule
) -> None:
    obj, python_field = _case(rule)
    assert python_field.startswith(rule.location), "the case's field is not the rule's"

    out = _dry_run(cluster, namespace, obj)
    assert out.returncode != 0, f"the API server accepted {obj}"
    assert "admission webhook" not in out.stderr
    assert rule.message in out.stderr, out.stderr

    result = admission.review(obj, Settings(), resolver=None, namespace=namespace)
    assert not result.allowed, f"the Python rules accept what {rule.message!r} refuses"
    fields = [_generic(p.field) for p in result.problems]
    assert python_field in fields, result.problems


def test_a_good_livestream_passes_both(
    cluster: LocalCluster, namespace: str, webhook_down: None
) -> None:
    obj = livestream(
        {
            "streamKeySecretRef": {"name": "launch-key", "key": "streamKey"},
            "ingest": {"tls": {"secretRef": {"name": "launch-tls"}}, "srt": {"latencyMs": 500}},
            "relay": {"reconnect": {"minDelaySeconds": 1, "maxDelaySeconds": 10}},
            "renditions": [
                {
                    "name": "720p",
                    "video": {"height": 720, "bitrateKbps": 3000, "maxBitrateKbps": 3500},
                }
            ],
            "restreams": [
                destination(rendition="720p"),
                destination(name="My Twitch", serverUrl="srt://srt.example.com:9000"),
                destination(
                    name="SRT tuned",
                    serverUrl="srt://srt.example.com:9000?latency=200000&pbkeylen=16&minversion=0x010300",
                ),
                destination(
                    name="Inline",
                    serverUrl="rtmps://[2606:4700::1111]:443/app?x=1",
                    streamKey="live_1-2.3~!",
                    streamKeySecretRef=None,
                ),
            ],
        }
    )
    out = _dry_run(cluster, namespace, obj)
    assert out.returncode == 0, out.stderr
    result = admission.review(obj, Settings(), resolver=None, namespace=namespace)
    assert result.allowed, result.message()


def test_the_api_server_stores_every_schema_default(
    cluster: LocalCluster, namespace: str, webhook_down: None
) -> None:
    # Without any webhook: the CRD schema's defaults, applied by the API server, are the
    # models' defaults (what the operator assumes when it parses a spec).
    spec = {
        "ingest": {"srt": {}},
        "restreams": [
            {
                "name": "Youtube",
                "serverUrl": "rtmp://a.rtmp.youtube.com/live2",
                "streamKeySecretRef": {"name": "yt"},
            },
            {
                "name": "Twitch",
                "serverUrl": "rtmps://live.twitch.tv:443/app",
                "streamKey": "k",
                "tls": {"caSecretRef": {"name": "ca"}},
            },
            {
                "name": "Studio",
                "serverUrl": "srt://srt.example.com:9000",
                "streamKey": "k",
                "srt": {"passphraseSecretRef": {"name": "pw"}},
            },
        ],
    }
    out = cluster.kubectl(
        "create", "-n", namespace, "-o", "json", "-f", "-", input=json.dumps(livestream(spec))
    )
    stored = json.loads(out.stdout)["spec"]
    expected = models.LiveStreamSpec.model_validate(spec).model_dump(
        mode="json", by_alias=True, exclude_none=True
    )
    # No renditions: the model's empty list, and nothing stored (the schema has no
    # default for it, so that a LiveStream without renditions shows none in kubectl).
    assert expected.pop("renditions") == [] and "renditions" not in stored
    assert stored == expected
    assert [r["enabled"] for r in stored["restreams"]] == [True, True, True]
    assert stored["restreams"][1]["tls"] == {
        "caSecretRef": {"name": "ca", "key": "ca.crt"},
        "insecureSkipVerify": False,
    }
    assert stored["restreams"][2]["srt"]["passphraseSecretRef"]["key"] == "passphrase"
    assert stored["restreams"][0]["streamKeySecretRef"] == {"name": "yt", "key": "streamKey"}
    assert stored["suspend"] is False
    assert stored["ingest"]["serviceType"] == "ClusterIP"
    assert stored["ingest"]["srt"] == {"latencyMs": 200}
