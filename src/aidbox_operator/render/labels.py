"""Labels and owner references shared by every child object."""

from __future__ import annotations

from typing import Any

from aidbox_operator.model import API_GROUP, API_VERSION, KIND, AidboxCluster
from aidbox_operator.model.constants import (
    APP_NAME,
    COMPONENT_LABEL,
    INSTANCE_LABEL,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    NAME_LABEL,
)


def selector_labels(cluster: AidboxCluster) -> dict[str, str]:
    """The pod selector. It must never change: a Deployment's selector is immutable."""
    return {NAME_LABEL: APP_NAME, INSTANCE_LABEL: cluster.name}


def selector_string(cluster: AidboxCluster) -> str:
    return ",".join(f"{k}={v}" for k, v in selector_labels(cluster).items())


def common_labels(cluster: AidboxCluster) -> dict[str, str]:
    return {
        **selector_labels(cluster),
        COMPONENT_LABEL: "server",
        MANAGED_BY_LABEL: MANAGED_BY,
    }


def object_meta(
    cluster: AidboxCluster, name: str, annotations: dict[str, str] | None = None
) -> dict[str, Any]:
    """`annotations`: the user's for this object (the spec's service.annotations, say)."""
    meta: dict[str, Any] = {
        "name": name,
        "namespace": cluster.namespace,
        "labels": common_labels(cluster),
    }
    if cluster.metadata.uid:
        meta["ownerReferences"] = [owner_reference(cluster)]
    if annotations:
        meta["annotations"] = dict(annotations)
    return meta


def owner_reference(cluster: AidboxCluster) -> dict[str, Any]:
    return {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": KIND,
        "name": cluster.name,
        "uid": cluster.metadata.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }
