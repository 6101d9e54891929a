"""The field reference in Markdown, generated from the same schema as the CRD."""

from __future__ import annotations

import json
from typing import Any

from aidbox_operator.model.crd import spec_schema


def _type(schema: dict[str, Any]) -> str:
    if schema.get("x-kubernetes-int-or-string"):
        return "int or string"
    kind = schema.get("type", "object")
    if kind == "array":
        return f"list of {_type(schema.get('items', {}))}"
    if kind == "object" and "additionalProperties" in schema:
        return f"map of {_type(schema['additionalProperties'])}"
    if "enum" in schema:
        return " \\| ".join(f"`{v}`" for v in schema["enum"])
    return str(kind)


def _rows(schema: dict[str, Any], prefix: str) -> list[str]:
    rows = []
    for name, sub in schema.get("properties", {}).items():
        path = f"{prefix}{name}"
        default = sub.get("default")
        shown = "" if default in (None, {}) else f"`{json.dumps(default)}`"
        description = " ".join(str(sub.get("description", "")).split()).replace("|", "\\|")
        rows.append(f"| `{path}` | {_type(sub)} | {shown} | {description} |")
        if "properties" in sub:
            rows += _rows(sub, f"{path}.")
        elif sub.get("type") == "array" and "properties" in sub.get("items", {}):
            rows += _rows(sub["items"], f"{path}[].")
    return rows


def field_reference() -> str:
    lines = ["| Field | Type | Default | Description |", "|---|---|---|---|"]
    lines += _rows(spec_schema(), "spec.")
    return "\n".join(lines) + "\n"
