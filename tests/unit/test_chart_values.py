"""The chart's values.yaml and values.schema.json describe the same values."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

CHART = Path(__file__).resolve().parents[2] / "charts" / "restream-operator"


def _paths(values: dict[str, Any], schema: dict[str, Any], prefix: str = "") -> list[str]:
    """Keys of ``values`` the schema does not declare, and declared keys values lacks,
    down through every object the schema gives properties for."""
    definitions = json.loads((CHART / "values.schema.json").read_text())["definitions"]
    if "$ref" in schema:
        schema = definitions[schema["$ref"].rsplit("/", 1)[1]]
    declared = schema.get("properties")
    if declared is None:
        return []
    problems = [f"{prefix}{k}: not in values.schema.json" for k in values if k not in declared]
    problems += [f"{prefix}{k}: not in values.yaml" for k in declared if k not in values]
    for key, value in values.items():
        if isinstance(value, dict) and key in declared:
            problems += _paths(value, declared[key], f"{prefix}{key}.")
    return problems


def test_every_value_is_in_the_schema_and_every_schema_property_has_a_default() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert schema["additionalProperties"] is False
    assert _paths(values, schema) == []
