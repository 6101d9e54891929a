"""Field names of Kubernetes' own types, for the spec fields passed through as free-form
objects: a typo (`maxskew`) is refused here with a clear message instead of being dropped or
refused later by the API server. The names come from the official client's generated models
(kept in step with the Kubernetes OpenAPI schema); no I/O."""

from __future__ import annotations

import re
from typing import Any

from kubernetes import client as k8s

# Older clients spell list types `list[V1X]`, newer ones `List[V1X]`: accept both, or the
# elements of every list field would go unchecked.
_LIST = re.compile(r"^[Ll]ist\[(.+)\]$")


def _model(name: str) -> Any:
    return getattr(k8s, name, None)


def check_fields(model_name: str, value: Any, path: str) -> None:
    """Raise ValueError naming the first field that `model_name` does not have."""
    model = _model(model_name)
    if model is None or not isinstance(value, dict):
        return
    by_json = {json: attr for attr, json in model.attribute_map.items()}
    for key, item in value.items():
        if key not in by_json:
            known = ", ".join(sorted(by_json))
            raise ValueError(f"{path}: unknown field {key!r} (known fields: {known})")
        type_name = model.openapi_types[by_json[key]]
        if match := _LIST.match(type_name):
            for index, element in enumerate(item if isinstance(item, list) else []):
                check_fields(match[1], element, f"{path}.{key}[{index}]")
        else:
            check_fields(type_name, item, f"{path}.{key}")
