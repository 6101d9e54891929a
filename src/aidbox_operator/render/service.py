"""The Service that balances across ready Aidbox pods."""

from __future__ import annotations

from typing import Any

from aidbox_operator.model import AidboxCluster
from aidbox_operator.render.labels import object_meta, selector_labels


def build_service(cluster: AidboxCluster) -> dict[str, Any]:
    spec = cluster.spec.service
    meta = object_meta(cluster, cluster.name)
    if spec.annotations:
        meta["annotations"] = dict(spec.annotations)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta,
        "spec": {
            "type": spec.type,
            "selector": selector_labels(cluster),
            "ports": [{"name": "http", "port": spec.port, "targetPort": "http", "protocol": "TCP"}],
        },
    }
