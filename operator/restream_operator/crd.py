"""Generates the LiveStream CustomResourceDefinition from the pydantic models.

pydantic emits JSON Schema; Kubernetes wants a *structural* OpenAPI v3 schema: every
node typed, no $ref, no anyOf-with-null, no titles. This module does that translation
and adds what only Kubernetes knows (printer columns, subresources, root CEL rules).
"""

from __future__ import annotations

from typing import Any

from . import models, yamlio

# Child objects are named <livestream>-ingest, <livestream>-relay-<slug>-<hash>, ...:
# a Service name is a DNS-1035 label of at most 63 characters, and so is a label value.
MAX_LIVESTREAM_NAME = 40
# A DNS-1035 label, as a Service name must be (the ingest Service is named after it).
LIVESTREAM_NAME = r"[a-z]([-a-z0-9]*[a-z0-9])?"

_KEEP = {
    "type",
    "description",
    "default",
    "enum",
    "format",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "pattern",
    "nullable",
}


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_inline(n, defs) for n in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[1]]
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return _inline(merged, defs)
    return {k: _inline(v, defs) for k, v in node.items()}


def _without_union(node: dict[str, Any]) -> dict[str, Any]:
    node = dict(node)
    branches = [b for b in node.pop("anyOf") if b.get("type") != "null"]
    if node.get("x-kubernetes-int-or-string"):
        return node  # int | str: the extension alone types it
    if len(branches) != 1:
        raise ValueError(f"cannot express a union in a structural schema: {branches}")
    # X | None: optional in Kubernetes terms (absent), never null
    node = {**branches[0], **node}
    if node.get("default", ...) is None:
        node.pop("default")
    return node


def _structural(node: dict[str, Any]) -> dict[str, Any]:
    """Turns one pydantic JSON-schema node into a structural OpenAPI node."""
    if "anyOf" in node:
        node = _without_union(node)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _KEEP or key.startswith("x-kubernetes-"):
            out[key] = value
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
    if "properties" in node:
        out["properties"] = {k: _structural(v) for k, v in node["properties"].items()}
        if node.get("required"):
            out["required"] = sorted(node["required"])
    if "items" in node:
        out["items"] = _structural(node["items"])
    if isinstance(node.get("additionalProperties"), dict):
        out["additionalProperties"] = _structural(node["additionalProperties"])
    if "description" in out:
        out["description"] = " ".join(out["description"].split())
    return out


def schema_of(model: type[models.Model]) -> dict[str, Any]:
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.pop("$defs", {})
    return _structural(_inline(raw, defs))


def _printer_columns() -> list[dict[str, Any]]:
    return [
        {
            "name": "Ready",
            "type": "string",
            "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
            "description": "The ingest and every enabled restream are ready",
        },
        {
            "name": "Broadcasting",
            "type": "boolean",
            "jsonPath": ".status.broadcasting",
            "description": "An encoder is publishing right now",
        },
        {
            "name": "Live",
            "type": "string",
            "jsonPath": ".status.liveRestreams",
            "description": "Live restreams out of all restreams",
        },
        {
            "name": "Ingest",
            "type": "string",
            "priority": 1,
            "jsonPath": ".status.ingest.rtmpUrl",
            "description": "RTMP URL encoders publish to",
        },
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]


def custom_resource_definition() -> dict[str, Any]:
    spec = schema_of(models.LiveStreamSpec)
    status = schema_of(models.LiveStreamStatus)
    root = {
        "type": "object",
        "description": (
            "A live stream: an RTMP ingest that encoders publish to, relayed live to every "
            "destination in spec.restreams (YouTube, Twitch, any RTMP, RTMPS or SRT endpoint)."
        ),
        "required": ["spec"],
        "properties": {
            "apiVersion": {
                "type": "string",
                "description": "Versioned schema of this object: restream.dev/v1alpha1.",
            },
            "kind": {"type": "string", "description": "LiveStream."},
            "metadata": {"type": "object"},
            "spec": spec,
            "status": status,
        },
        "x-kubernetes-validations": [
            {
                "rule": (
                    f"size(self.metadata.name) <= {MAX_LIVESTREAM_NAME} && "
                    f"self.metadata.name.matches({models.cel_string(f'^{LIVESTREAM_NAME}$')})"
                ),
                "message": (
                    f"metadata.name must be at most {MAX_LIVESTREAM_NAME} characters of a-z, "
                    "0-9 and '-', starting with a letter (it names the ingest Service)"
                ),
            }
        ],
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{models.PLURAL}.{models.GROUP}",
            "labels": {"app.kubernetes.io/name": "restream-operator"},
        },
        "spec": {
            "group": models.GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": models.KIND,
                "listKind": f"{models.KIND}List",
                "plural": models.PLURAL,
                "singular": models.SINGULAR,
                "shortNames": models.SHORT_NAMES,
                "categories": models.CATEGORIES,
            },
            "versions": [
                {
                    "name": models.VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": _printer_columns(),
                    "schema": {"openAPIV3Schema": root},
                }
            ],
        },
    }


def crd_yaml() -> str:
    header = "# Generated from operator/restream_operator/models.py by `restream-operator crd`.\n"
    header += "# Do not edit: change the models and run `make crd`.\n"
    return header + yamlio.dump(custom_resource_definition())
