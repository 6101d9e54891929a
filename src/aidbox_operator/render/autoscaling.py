"""The HorizontalPodAutoscaler of spec.autoscaling, and who sets the Deployment's replicas."""

from __future__ import annotations

from typing import Any

from aidbox_operator.model import AidboxCluster
from aidbox_operator.render.labels import object_meta

# On a Deployment whose replicas another controller chooses (spec.autoscaling, or
# manageReplicas false): the operator's field manager has let go of .spec.replicas. Without
# it, the operator first hands the count over (reconcile/replicas.py), or dropping the field
# from its apply would reset the Deployment to 1 replica.
REPLICAS_LEFT_TO_ANNOTATION = "aidbox.io/replicas-left-to"


def replicas_owner(cluster: AidboxCluster) -> str:
    """Who chooses the replicas when the operator does not, as the annotation says it."""
    if cluster.spec.autoscaling is not None:
        return f"HorizontalPodAutoscaler/{cluster.name}"
    return "another controller (manageReplicas: false)"


def initial_replicas(cluster: AidboxCluster) -> int:
    """The count a new Deployment starts with: spec.replicas, within autoscaling's bounds (so
    the HPA has nothing to correct before it measures anything)."""
    autoscaling = cluster.spec.autoscaling
    replicas = cluster.spec.replicas
    return autoscaling.clamp(replicas) if autoscaling is not None else replicas


def _resource_metric(name: str, utilization: int) -> dict[str, Any]:
    target = {"type": "Utilization", "averageUtilization": utilization}
    return {"type": "Resource", "resource": {"name": name, "target": target}}


def build_autoscaler(cluster: AidboxCluster) -> dict[str, Any]:
    autoscaling = cluster.spec.autoscaling
    assert autoscaling is not None
    metrics = []
    if (cpu := autoscaling.cpu_target()) is not None:
        metrics.append(_resource_metric("cpu", cpu))
    if (memory := autoscaling.target_memory_utilization_percentage) is not None:
        metrics.append(_resource_metric("memory", memory))
    spec: dict[str, Any] = {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": cluster.name},
        "minReplicas": autoscaling.min_replicas,
        "maxReplicas": autoscaling.max_replicas,
        "metrics": metrics,
    }
    if autoscaling.behavior is not None:
        behavior = autoscaling.behavior.model_dump(by_alias=True, exclude_none=True)
        if behavior:
            spec["behavior"] = behavior
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": object_meta(cluster, cluster.name),
        "spec": spec,
    }
