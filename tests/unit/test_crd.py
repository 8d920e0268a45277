"""The CRD is generated from the models, committed, structural and documented."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from restream_operator import crd, models
from restream_operator.agent.contract import RelayState

CHECKOUT = Path(__file__).resolve().parents[2]
COMMITTED = CHECKOUT / "crds" / "restream.dev_livestreams.yaml"


def _schema() -> dict[str, Any]:
    version = crd.custom_resource_definition()["spec"]["versions"][0]
    return dict(version["schema"]["openAPIV3Schema"])


def _walk(node: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    out = [(path, node)]
    for name, child in (node.get("properties") or {}).items():
        out += _walk(child, f"{path}.{name}")
    if "items" in node:
        out += _walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        out += _walk(node["additionalProperties"], f"{path}{{}}")
    return out


def test_committed_crd_is_what_the_models_generate() -> None:
    assert COMMITTED.read_text() == crd.crd_yaml(), (
        "crds/ is stale: run `make crd` (restream-operator crd > crds/...) and commit"
    )


def test_every_node_is_typed_and_no_union_or_ref_survives() -> None:
    for path, node in _walk(_schema()):
        assert "type" in node or node.get("x-kubernetes-int-or-string"), path
        assert not {"anyOf", "oneOf", "allOf", "$ref", "title"} & node.keys(), path


def test_every_field_has_a_description() -> None:
    for path, node in _walk(_schema()):
        if path in ("", ".metadata") or path.endswith("{}"):
            continue  # the root has one; metadata may not; map values are not fields
        assert node.get("description"), f"{path} has no description"


def test_restreams_are_a_list_map_keyed_by_name_with_cel_rules() -> None:
    spec = _schema()["properties"]["spec"]
    restreams = spec["properties"]["restreams"]
    assert restreams["x-kubernetes-list-type"] == "map"
    assert restreams["x-kubernetes-list-map-keys"] == ["name"]
    assert restreams["maxItems"] == models.MAX_RESTREAMS_CEILING
    rules = [r["rule"] for r in restreams["items"]["x-kubernetes-validations"]]
    assert any("has(self.streamKey) != has(self.streamKeySecretRef)" in r for r in rules)
    assert any("lowerAscii" in r["rule"] for r in spec["x-kubernetes-validations"])
    url = restreams["items"]["properties"]["serverUrl"]
    assert any("rtmp|rtmps|srt" in r["rule"] for r in url["x-kubernetes-validations"])


def test_status_subresource_printer_columns_names() -> None:
    spec = crd.custom_resource_definition()["spec"]
    version = spec["versions"][0]
    assert version["subresources"] == {"status": {}}
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert columns[:3] == ["Ready", "Broadcasting", "Live"]
    assert columns[-1] == "Age"
    assert spec["names"]["shortNames"] == models.SHORT_NAMES
    assert spec["names"]["categories"] == models.CATEGORIES


def test_defaults_are_in_the_schema() -> None:
    props = _schema()["properties"]["spec"]["properties"]
    assert props["restreams"]["items"]["properties"]["enabled"]["default"] is True
    assert props["ingest"]["default"] == {}
    assert props["ingest"]["properties"]["serviceType"]["default"] == "ClusterIP"
    assert props["suspend"]["default"] is False


@pytest.mark.parametrize("example", sorted((CHECKOUT / "examples").glob("*.yaml")))
def test_examples_parse_with_the_models(example: Path) -> None:
    for doc in yaml.safe_load_all(example.read_text()):
        if doc and doc.get("kind") == models.KIND:
            models.LiveStreamSpec.model_validate(doc["spec"])


def test_api_video_payload_is_accepted_as_is() -> None:
    # The restreams array from api.video's guide, names and inline keys included.
    payload = [
        {
            "name": "Youtube",
            "serverUrl": "rtmp://a.rtmp.youtube.com/live2",
            "streamKey": "xxxxx-yyyyy-zzzzz",
        },
        {
            "name": "Twitch",
            "serverUrl": "rtmp://cdg02.contribute.live-video.net/app/live_923901944_8N3NXy5Kk1qC64cjdT2zCoAk6e7b0t",
            "streamKey": "live_0000-11111111111",
        },
    ]
    spec = models.LiveStreamSpec.model_validate({"restreams": payload})
    assert [r.name for r in spec.restreams] == ["Youtube", "Twitch"]
    assert all(r.enabled for r in spec.restreams)
    example = yaml.safe_load((CHECKOUT / "examples" / "api-video-compatible.yaml").read_text())
    assert example["spec"]["restreams"] == payload


def test_what_relay_agents_report_is_spelt_as_the_api_spells_it() -> None:
    api = {s.value for s in models.RestreamState}
    assert {s.value for s in RelayState} <= api
    # Only the operator's own words are missing from what agents say.
    assert api - {s.value for s in RelayState} == {"Disabled", "Pending", "Unknown"}
