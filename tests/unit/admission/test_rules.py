"""Rules are tied to model fields: each lands on a node of the generated CRD schema, and a
rule for a field that does not exist fails instead of never running."""

from __future__ import annotations

import pytest

from restream_operator import models
from restream_operator.admission import rules, schema


def test_every_rule_constraint_and_hint_is_on_a_node_of_the_crd_schema() -> None:
    table = rules.SPEC_RULES
    for path in [*table.rules, *table.own_constraints, *table.required_hints]:
        assert schema.node(path) is not None, f"{path} is not in the CRD schema"


def test_every_required_hint_is_for_a_required_field() -> None:
    for path in rules.SPEC_RULES.required_hints:
        parent, _, key = path.rpartition(".")
        node = schema.node(parent)
        assert node is not None and key in node.get("required", []), path


def test_a_field_is_found_by_its_alias_wherever_it_is_used() -> None:
    assert schema.paths_of((models.Restream, "server_url")) == ("restreams[].serverUrl",)
    assert schema.paths_of(models.Restream) == ("restreams[]",)
    assert set(schema.paths_of((models.SecretKeySelector, "name"))) == {
        "streamKeySecretRef.name",
        "restreams[].streamKeySecretRef.name",
    }
    assert set(schema.paths_of((models.ResourceRequirements, "limits"))) == {
        "ingest.resources.limits",
        "relay.resources.limits",
        "renditions[].resources.limits",
    }


def test_a_rule_for_a_field_that_does_not_exist_fails() -> None:
    with pytest.raises(LookupError, match="serverURL"):
        schema.paths_of((models.Restream, "serverURL"))
    with pytest.raises(KeyError):
        schema.alias(models.Restream, "url")
    with pytest.raises(LookupError, match="max_length"):
        schema.max_length(models.Restream, "enabled")
