"""The PodDisruptionBudget that keeps an HA cluster serving through node drains."""

from __future__ import annotations

from typing import Any

from aidbox_operator.model import AidboxCluster
from aidbox_operator.render.labels import object_meta, selector_labels


def wants_disruption_budget(cluster: AidboxCluster, replicas: int) -> bool:
    """`replicas` is what the Deployment runs: the spec's, or an autoscaler's choice."""
    # With one replica a budget could only block node drains, never keep anything serving.
    return cluster.spec.pod_disruption_budget.enabled and replicas >= 2


def build_disruption_budget(cluster: AidboxCluster) -> dict[str, Any]:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": object_meta(cluster, cluster.name),
        "spec": {
            "maxUnavailable": cluster.spec.pod_disruption_budget.max_unavailable,
            "selector": {"matchLabels": selector_labels(cluster)},
            "unhealthyPodEvictionPolicy": (
                cluster.spec.pod_disruption_budget.unhealthy_pod_eviction_policy
            ),
        },
    }
