"""The Service that balances across ready Aidbox pods."""

from __future__ import annotations

from typing import Any

from aidbox_operator.model import AidboxCluster
from aidbox_operator.render.labels import common_labels, object_meta, selector_labels


def build_service(cluster: AidboxCluster) -> dict[str, Any]:
    spec = cluster.spec.service
    meta = object_meta(cluster, cluster.name, spec.annotations)
    ports = [{"name": "http", "port": spec.port, "targetPort": "http", "protocol": "TCP"}]
    if cluster.spec.metrics.enabled:
        port = cluster.spec.metrics.port
        ports.append({"name": "metrics", "port": port, "targetPort": "metrics", "protocol": "TCP"})
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta,
        "spec": {"type": spec.type, "selector": selector_labels(cluster), "ports": ports},
    }


def wants_service_monitor(cluster: AidboxCluster) -> bool:
    metrics = cluster.spec.metrics
    return metrics.enabled and metrics.service_monitor.enabled


def build_service_monitor(cluster: AidboxCluster) -> dict[str, Any]:
    monitor = cluster.spec.metrics.service_monitor
    meta = object_meta(cluster, cluster.name)
    meta["labels"] = {**monitor.labels, **meta["labels"]}
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": meta,
        "spec": {
            "selector": {"matchLabels": common_labels(cluster)},
            "endpoints": [{"port": "metrics", "path": "/metrics", "interval": monitor.interval}],
        },
    }
