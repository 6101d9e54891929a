"""The CustomResourceDefinition, generated from the pydantic models (the single source).

Kubernetes wants a *structural* OpenAPI schema: no $ref, no anyOf-with-null, no titles, no
`additionalProperties: false`. `structural_schema` turns pydantic's JSON Schema into that.
"""

from __future__ import annotations

import copy
from typing import Any

from pydantic import BaseModel

from aidbox_operator.model.channel import (
    CHANNEL_KIND,
    CHANNEL_PLURAL,
    CHANNEL_SHORT_NAME,
    CHANNEL_SINGULAR,
    ReleaseChannelSpec,
    ReleaseChannelStatus,
)
from aidbox_operator.model.constants import (
    API_GROUP,
    API_VERSION,
    KIND,
    PLURAL,
    SHORT_NAME,
    SINGULAR,
)
from aidbox_operator.model.spec import ROOT_VALIDATIONS, AidboxClusterSpec
from aidbox_operator.model.status import ClusterStatus

Schema = dict[str, Any]
_DROP = frozenset({"title"})


def _resolve(schema: Schema, defs: Schema) -> Schema:
    if "$ref" in schema:
        target = defs[schema["$ref"].rsplit("/", 1)[-1]]
        # Keys beside the $ref (description, default) describe this use and win.
        schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
    any_of = schema.get("anyOf")
    if any_of and not schema.get("x-kubernetes-int-or-string"):
        variants = [v for v in any_of if v.get("type") != "null"]
        if len(variants) == 1:
            inner = _resolve(variants[0], defs)
            outer = {k: v for k, v in schema.items() if k != "anyOf"}
            schema = {**inner, **outer}
    return schema


def structural_schema(schema: Schema, defs: Schema) -> Schema:
    schema = _resolve(schema, defs)
    # Objects whose field defaults to None: absent means "none" (no Ingress, say), so the
    # API server must not fill in an empty one.
    absent = {
        name
        for name, sub in (schema.get("properties") or {}).items()
        if "default" in (resolved := _resolve(sub, defs)) and resolved["default"] is None
    }
    out: Schema = {}
    for key, value in schema.items():
        if key in _DROP or key == "$defs":
            continue
        if key == "default" and value is None:
            continue
        if key == "additionalProperties" and value is False:
            continue
        if key == "properties":
            out[key] = {name: structural_schema(sub, defs) for name, sub in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = structural_schema(value, defs)
        else:
            # A copy: a model used twice would share its lists, which YAML writes as aliases.
            out[key] = copy.deepcopy(value)
    # An absent nested object defaults to {} so the API server fills in its fields' defaults
    # and `kubectl get -o yaml` shows the values in force; one with required fields is absent
    # until it means something (status.upgrade exists only while a release rolls).
    for name, sub in out.get("properties", {}).items():
        plain = "default" not in sub and not sub.get("required") and name not in absent
        if sub.get("type") == "object" and "properties" in sub and plain:
            sub["default"] = {}
        out["properties"][name] = sub
    return out


def model_schema(model: type[BaseModel]) -> Schema:
    raw = model.model_json_schema(by_alias=True, mode="validation")
    return structural_schema(raw, raw.get("$defs", {}))


def spec_schema() -> Schema:
    schema = model_schema(AidboxClusterSpec)
    schema["default"] = {}
    # Defaulted by the operator, not the API server: a stored default would make every cluster
    # look as if it set image, and spec.channel could never be chosen instead.
    del schema["properties"]["image"]["default"]
    return schema


def status_schema() -> Schema:
    schema = model_schema(ClusterStatus)
    # A cluster the operator has not acted on yet reads as generation 1 observed at 0, so
    # kstatus (Flux, kpt) says InProgress instead of Current before the first status write.
    schema["default"] = {}
    schema["properties"]["observedGeneration"]["default"] = 0
    return schema


PRINTER_COLUMNS = [
    {"name": "Ready", "type": "string", "jsonPath": ".status.ready", "description": "Ready pods."},
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase", "description": "Phase."},
    {
        "name": "Version",
        "type": "string",
        "jsonPath": ".status.version",
        "description": "Aidbox release or channel running.",
    },
    {
        "name": "URL",
        "type": "string",
        "jsonPath": ".status.url",
        "description": "Where the cluster is served.",
    },
    {
        "name": "Image",
        "type": "string",
        "jsonPath": ".spec.image",
        "priority": 1,
        "description": "Desired image.",
    },
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


CHANNEL_COLUMNS = [
    {"name": "Image", "type": "string", "jsonPath": ".spec.image", "description": "Target."},
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase", "description": "Phase."},
    {
        "name": "Wave",
        "type": "string",
        "jsonPath": ".status.currentWave",
        "description": "Wave being upgraded.",
    },
    {
        "name": "Waves",
        "type": "string",
        "jsonPath": ".status.progress",
        "description": "Waves done / waves.",
    },
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


def build_channel_crd() -> Schema:
    """The CRD manifest for AidboxReleaseChannel (cluster-scoped)."""
    status = model_schema(ReleaseChannelStatus)
    status["default"] = {}
    status["properties"]["observedGeneration"]["default"] = 0
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{CHANNEL_PLURAL}.{API_GROUP}",
            "labels": {"app.kubernetes.io/part-of": "aidbox-operator"},
        },
        "spec": {
            "group": API_GROUP,
            "scope": "Cluster",
            "names": {
                "kind": CHANNEL_KIND,
                "listKind": f"{CHANNEL_KIND}List",
                "plural": CHANNEL_PLURAL,
                "singular": CHANNEL_SINGULAR,
                "shortNames": [CHANNEL_SHORT_NAME],
                "categories": ["aidbox"],
            },
            "versions": [
                {
                    "name": API_VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "description": "AidboxReleaseChannel: one Aidbox release for the "
                            "AidboxClusters that name it, reaching them in waves.",
                            "type": "object",
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": model_schema(ReleaseChannelSpec),
                                "status": status,
                            },
                        }
                    },
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": CHANNEL_COLUMNS,
                }
            ],
        },
    }


def build_crd() -> Schema:
    """The whole CRD manifest for AidboxCluster."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{PLURAL}.{API_GROUP}",
            "labels": {"app.kubernetes.io/part-of": "aidbox-operator"},
        },
        "spec": {
            "group": API_GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": SINGULAR,
                "shortNames": [SHORT_NAME],
                "categories": ["aidbox"],
            },
            "versions": [
                {
                    "name": API_VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "description": "AidboxCluster runs a highly available Aidbox "
                            "(Health Samurai's FHIR server): a Deployment, its Service and "
                            "everything HA needs, kept in the wanted state by aidbox-operator.",
                            "type": "object",
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": spec_schema(),
                                "status": status_schema(),
                            },
                            "x-kubernetes-validations": ROOT_VALIDATIONS,
                        }
                    },
                    "subresources": {
                        "status": {},
                        "scale": {
                            "specReplicasPath": ".spec.replicas",
                            "statusReplicasPath": ".status.replicas",
                            "labelSelectorPath": ".status.selector",
                        },
                    },
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                }
            ],
        },
    }
