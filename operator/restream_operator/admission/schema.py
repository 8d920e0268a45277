"""The CRD schema as admission reads it: where each model field is, and the walk over it.

Rules are attached to model fields (``(models.Restream, "server_url")``), never to
hand-written paths: :func:`paths_of` finds every place a field or a model appears below
``spec`` from the models themselves (by alias), so that renaming a field or its alias
moves its rules along, and a rule for a field that no longer exists fails at import.

The walk checks each value against its node of the generated CRD schema (type, enum,
limits, required fields, unknown fields), with messages a person can act on, then runs
the node's own rule.
"""

from __future__ import annotations

import difflib
import functools
import re
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from .. import crd, models
from .check import MAX_ITEMS, Check
from .text import field, item, kind

# A place in the models: a model (wherever it is used), or one field of a model.
FieldKey = type[BaseModel] | tuple[type[BaseModel], str]
Rule = Callable[[object, str, Check], None]


def alias(model: type[BaseModel], name: str) -> str:
    """The field's name in the API (KeyError when the model has no such field)."""
    return model.model_fields[name].alias or name


def max_length(model: type[BaseModel], name: str) -> int:
    """The field's max_length, as the models (and so the CRD) declare it."""
    metadata = model.model_fields[name].metadata
    found = [m.max_length for m in metadata if getattr(m, "max_length", None) is not None]
    if not found:
        raise LookupError(f"{model.__name__}.{name} declares no max_length")
    return int(found[0])


def _models_in(annotation: Any) -> Iterator[tuple[type[BaseModel], str]]:
    """The models a field's type holds, each with the path suffix that reaches it."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        for arg in args:
            yield from _models_in(arg)
    elif origin is typing.Annotated:
        yield from _models_in(args[0])
    elif origin is list:
        yield from ((m, "[]" + s) for m, s in _models_in(args[0]))
    elif origin is dict:
        yield from ((m, "{}" + s) for m, s in _models_in(args[1]))
    elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation, ""


@functools.cache
def _model_paths() -> dict[FieldKey, tuple[str, ...]]:
    found: dict[FieldKey, list[str]] = {}

    def visit(model: type[BaseModel], path: str) -> None:
        found.setdefault(model, []).append(path)
        for name, info in model.model_fields.items():
            here = f"{path}.{alias(model, name)}".lstrip(".")
            found.setdefault((model, name), []).append(here)
            for inner, suffix in _models_in(info.annotation):
                visit(inner, here + suffix)

    visit(models.LiveStreamSpec, "")
    return {key: tuple(paths) for key, paths in found.items()}


def paths_of(key: FieldKey) -> tuple[str, ...]:
    """Every schema path below spec (``restreams[].serverUrl``) where ``key`` is."""
    paths = _model_paths().get(key)
    if not paths:
        raise LookupError(f"{key!r} is nowhere in the LiveStream spec's models")
    return paths


@functools.cache
def _root_schema() -> dict[str, Any]:
    version = crd.custom_resource_definition()["spec"]["versions"][0]
    return dict(version["schema"]["openAPIV3Schema"])


def spec_schema() -> dict[str, Any]:
    return dict(_root_schema()["properties"]["spec"])


def node(spath: str) -> Mapping[str, Any] | None:
    """The schema node at a path below spec, None when there is none."""
    here: Mapping[str, Any] | None = spec_schema()
    for part in re.findall(r"[^.\[\]{}]+|\[\]|\{\}", spath):
        if here is None:
            return None
        if part == "[]":
            here = here.get("items")
        elif part == "{}":
            extra = here.get("additionalProperties")
            here = extra if isinstance(extra, Mapping) else None
        else:
            here = (here.get("properties") or {}).get(part)
    return here


@dataclass(frozen=True)
class NodeRules:
    """What the walk runs beyond the schema, by schema path below spec."""

    rules: Mapping[str, Rule]
    # Nodes whose length/pattern/size constraints a rule words better than "too long".
    own_constraints: frozenset[str]
    # How to fix a missing required field.
    required_hints: Mapping[str, str]


_EXPECTED = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "integer": "an integer",
    "boolean": "true or false",
    "number": "a number",
}


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


_TYPES: dict[str, Callable[[object], bool]] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": _is_int,
    "boolean": lambda v: isinstance(v, bool),
    "number": lambda v: _is_int(v) or isinstance(v, float),
}


def _type_ok(value: object, schema: Mapping[str, Any]) -> bool:
    if schema.get("x-kubernetes-int-or-string"):
        return isinstance(value, str) or _is_int(value)
    test = _TYPES.get(str(schema.get("type")))
    return test is None or test(value)


def _type_message(value: object, schema: Mapping[str, Any]) -> str:
    if schema.get("x-kubernetes-int-or-string"):
        expected = "an integer or a string"
    else:
        expected = _EXPECTED.get(str(schema.get("type")), str(schema.get("type")))
    message = f"must be {expected}, not {kind(value)}"
    if isinstance(value, str) and value.strip().lower() in (
        "true",
        "false",
        "yes",
        "no",
        "on",
        "off",
    ):
        message += " (write true or false, without quotes)"
    elif isinstance(value, str) and value.strip().isdigit() and schema.get("type") == "integer":
        message += " (write the number without quotes)"
    return message


def walk(
    value: object,
    schema: Mapping[str, Any],
    path: str,
    spath: str,
    check: Check,
    rules: NodeRules,
) -> None:
    """Checks ``value`` against its schema node, then the node's own rule."""
    if not _type_ok(value, schema):
        check.problem(path, _type_message(value, schema))
        return
    if "enum" in schema and value not in schema["enum"]:
        allowed = ", ".join(str(v) for v in schema["enum"])
        hint = next(
            (
                f": did you mean {v}?"
                for v in schema["enum"]
                if str(v).lower() == str(value).lower()
            ),
            "",
        )
        check.problem(path, f"must be one of {allowed}, not {kind(value)}{hint}")
        return
    if spath not in rules.own_constraints:
        _constraints(value, schema, path, check)
    if isinstance(value, dict):
        _walk_object(value, schema, path, spath, check, rules)
    elif isinstance(value, list) and "items" in schema:
        for index, entry in enumerate(value[:MAX_ITEMS]):
            walk(entry, schema["items"], item(path, index, entry), f"{spath}[]", check, rules)
        if len(value) > MAX_ITEMS:
            check.problem(
                path, f"has {len(value)} entries: only the first {MAX_ITEMS} were checked"
            )
    rule = rules.rules.get(spath)
    if rule is not None:
        rule(value, path, check)


def _constraints(value: object, schema: Mapping[str, Any], path: str, check: Check) -> None:
    if isinstance(value, int) and not isinstance(value, bool):
        low, high = schema.get("minimum"), schema.get("maximum")
        if (low is not None and value < low) or (high is not None and value > high):
            check.problem(path, f"must be between {low} and {high}, not {value}")
    if isinstance(value, str):
        low, high = schema.get("minLength"), schema.get("maxLength")
        if low is not None and len(value) < low:
            check.problem(path, "must not be empty" if low == 1 else f"needs {low}+ characters")
        if high is not None and len(value) > high:
            check.problem(path, f"is {len(value)} characters long, more than {high}")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            check.problem(path, f"must match {schema['pattern']}")
    if isinstance(value, list) and "maxItems" in schema and len(value) > schema["maxItems"]:
        check.problem(path, f"has {len(value)} entries, more than {schema['maxItems']}")


def _walk_object(
    value: dict[Any, Any],
    schema: Mapping[str, Any],
    path: str,
    spath: str,
    check: Check,
    rules: NodeRules,
) -> None:
    properties: Mapping[str, Any] = schema.get("properties") or {}
    extra = schema.get("additionalProperties")
    for key, child in value.items():
        if not isinstance(key, str):
            check.problem(path, f"has a key that is {kind(key)}: keys must be strings")
            continue
        here = field(path, key)
        if key in properties:
            if child is not None:  # the API server drops nulls (then defaults them)
                walk(child, properties[key], here, f"{spath}.{key}".lstrip("."), check, rules)
        elif isinstance(extra, Mapping):
            if child is None:
                check.problem(
                    here, f"must be {_EXPECTED.get(str(extra.get('type')), 'a value')}, not null"
                )
            else:
                walk(child, extra, here, f"{spath}{{}}", check, rules)
        elif properties and not check.warnings_full:
            similar = [
                p for p in properties if p.lower() == key.lower()
            ] or difflib.get_close_matches(key, list(properties), n=1)
            hint = f": did you mean {similar[0]}?" if similar else ""
            check.warn(
                here,
                f"unknown field, which the API server drops{hint} (known fields: "
                f"{', '.join(properties)})",
            )
    for key in schema.get("required") or ():
        if value.get(key) is None:
            sub = f"{spath}.{key}".lstrip(".")
            hint = rules.required_hints.get(sub, f"set {key}")
            check.problem(field(path, key), f"is missing: {hint}")
