"""Aidbox's own metrics: port, Service port and an optional ServiceMonitor."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from helpers import wait_for
from kube_helpers import (
    SERVICE_MONITOR_CRD,
    apply,
    condition,
    create_cluster,
    make_config,
    patch_spec,
    wait_condition,
)

pytestmark = pytest.mark.usefixtures("operator")


def _service_monitor(api: Any, name: str, ns: str) -> dict[str, Any] | None:
    try:
        found: dict[str, Any] = client.CustomObjectsApi(api).get_namespaced_custom_object(
            "monitoring.coreos.com", "v1", ns, "servicemonitors", name
        )
        return found
    except ApiException as err:
        if err.status == 404:
            return None
        raise


def test_metrics_port_and_service_monitor(api_client: Any, namespace: str) -> None:
    make_config(api_client, "mx", namespace)
    create_cluster(api_client, "mx", namespace, metrics={"enabled": True})
    wait_condition(api_client, "mx", namespace, "Ready")
    container = (
        client.AppsV1Api(api_client)
        .read_namespaced_deployment("mx", namespace)
        .spec.template.spec.containers[0]
    )
    assert [(p.name, p.container_port) for p in container.ports] == [
        ("http", 8080),
        ("metrics", 8765),
    ]
    assert {e.name: e.value for e in container.env if e.value}["BOX_METRICS_PORT"] == "8765"
    service = client.CoreV1Api(api_client).read_namespaced_service("mx", namespace)
    assert [(p.name, p.port) for p in service.spec.ports] == [("http", 8080), ("metrics", 8765)]

    ext = client.ApiextensionsV1Api(api_client)
    try:
        ext.delete_custom_resource_definition(SERVICE_MONITOR_CRD["metadata"]["name"])
    except ApiException as err:
        assert err.status == 404
    wait_for(
        lambda: (
            not [
                c
                for c in ext.list_custom_resource_definition().items
                if c.metadata.name == SERVICE_MONITOR_CRD["metadata"]["name"]
            ]
        ),
        timeout=30,
        message="no ServiceMonitor CRD",
    )
    patch_spec(
        api_client,
        "mx",
        namespace,
        {"metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prom"}}}},
    )
    body = wait_condition(
        api_client, "mx", namespace, "Degraded", reason="ServiceMonitorUnavailable"
    )
    assert condition(body, "Ready")["status"] == "True"

    # Installing the Prometheus Operator's CRD later is picked up without touching the cluster.
    apply(api_client, SERVICE_MONITOR_CRD)
    monitor = wait_for(
        lambda: _service_monitor(api_client, "mx", namespace),
        timeout=40,
        message="ServiceMonitor created once its kind exists",
    )
    assert monitor["metadata"]["labels"]["release"] == "prom"
    assert monitor["spec"]["endpoints"] == [
        {"port": "metrics", "path": "/metrics", "interval": "30s"}
    ]
    wait_condition(api_client, "mx", namespace, "Degraded", status="False")

    patch_spec(api_client, "mx", namespace, {"metrics": {"serviceMonitor": {"enabled": False}}})
    wait_for(
        lambda: _service_monitor(api_client, "mx", namespace) is None,
        timeout=30,
        message="ServiceMonitor removed when turned off",
    )
