"""The operator's own Prometheus metrics reflect what it did."""

from __future__ import annotations

import re
from typing import Any

from kubernetes import client

from helpers import wait_for
from kube_helpers import create_cluster, make_config, wait_condition
from operator_process import OperatorProcess


def _value(metrics: dict[str, float], name: str) -> float:
    return sum(v for k, v in metrics.items() if k == name or k.startswith(name + "{"))


def test_metrics_count_reconciles_repairs_and_rollouts(
    api_client: Any, namespace: str, operator: OperatorProcess
) -> None:
    before = operator.metrics()
    make_config(api_client, "om", namespace)
    create_cluster(api_client, "om", namespace)
    wait_condition(api_client, "om", namespace, "Ready")
    client.CoreV1Api(api_client).delete_namespaced_service("om", namespace)
    wait_for(
        lambda: client.CoreV1Api(api_client).read_namespaced_service("om", namespace),
        timeout=10,
        message="Service recreated",
    )
    client.CoreV1Api(api_client).patch_namespaced_config_map(
        "om", namespace, {"data": {"BOX_ID": "changed"}}
    )
    wait_for(
        lambda: (
            _value(operator.metrics(), "aidbox_operator_config_rollouts_total")
            > _value(before, "aidbox_operator_config_rollouts_total")
        ),
        timeout=10,
        message="config rollout counted",
    )
    # The rollout just started: the clusters-by-phase gauge says Ready again once it is done.
    wait_condition(api_client, "om", namespace, "Ready")
    wait_for(
        lambda: operator.metrics().get('aidbox_operator_clusters{phase="Ready"}', 0) >= 1,
        timeout=10,
        message="the phase gauge following the cluster back to Ready",
    )
    after = operator.metrics()
    assert after['aidbox_operator_drift_repairs_total{kind="Service"}'] >= 1 + before.get(
        'aidbox_operator_drift_repairs_total{kind="Service"}', 0
    )
    assert after['aidbox_operator_reconciles_total{result="success"}'] > before.get(
        'aidbox_operator_reconciles_total{result="success"}', 0
    )
    assert _value(after, "aidbox_operator_reconcile_duration_seconds_count") > _value(
        before, "aidbox_operator_reconcile_duration_seconds_count"
    )
    assert after['aidbox_operator_api_requests_total{verb="apply"}'] > 0
    assert after['aidbox_operator_clusters{phase="Ready"}'] >= 1
    assert "aidbox_operator_queue_depth" in after


def _cluster_series(metrics: dict[str, float], namespace: str, name: str) -> dict[str, float]:
    """The per-cluster series of one cluster: {"metric{label=value,...}" with the labels
    other than namespace and name, sorted: value}."""
    found = {}
    for key, value in metrics.items():
        metric, _, rest = key.partition("{")
        labels = dict(re.findall(r'(\w+)="([^"]*)"', rest))
        if metric.startswith("aidbox_cluster_") and (
            labels.pop("namespace", None),
            labels.pop("name", None),
        ) == (namespace, name):
            found[metric + str(sorted(labels.items()) or "")] = value
    return found


def test_per_cluster_series_follow_a_cluster_and_go_with_it(
    api_client: Any, namespace: str, operator: OperatorProcess
) -> None:
    make_config(api_client, "series", namespace)
    create_cluster(api_client, "series", namespace, replicas=2)
    wait_condition(api_client, "series", namespace, "Ready")

    def ready_series() -> dict[str, float]:
        series = _cluster_series(operator.metrics(), namespace, "series")
        return series if series.get("aidbox_cluster_ready") == 1 else {}

    series = wait_for(ready_series, timeout=10, message="the cluster's series, Ready")
    assert series["aidbox_cluster_replicas_desired"] == 2
    assert series["aidbox_cluster_replicas_ready"] == 2
    info = [k for k in series if k.startswith("aidbox_cluster_info")]
    assert len(info) == 1 and "('phase', 'Ready')" in info[0], series
    pods = [v for k, v in series.items() if k.startswith("aidbox_cluster_pods")]
    assert sum(pods) == 2, series
    client.CustomObjectsApi(api_client).delete_namespaced_custom_object(
        "aidbox.io", "v1alpha1", namespace, "aidboxclusters", "series"
    )
    wait_for(
        lambda: not _cluster_series(operator.metrics(), namespace, "series"),
        timeout=10,
        message="the deleted cluster's series gone",
    )
