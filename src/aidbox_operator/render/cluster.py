"""Everything one AidboxCluster is made of, in apply order."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aidbox_operator.model import AidboxCluster
from aidbox_operator.model.constants import APPLIED_HASH_ANNOTATION
from aidbox_operator.render.deployment import build_deployment
from aidbox_operator.render.disruption import build_disruption_budget, wants_disruption_budget
from aidbox_operator.render.hashing import stable_hash
from aidbox_operator.render.service import (
    build_service,
    build_service_monitor,
    wants_service_monitor,
)


@dataclass(frozen=True)
class RenderContext:
    """Facts about the world that reconcile looked up, so rendering itself stays pure."""

    # Digest of the referenced ConfigMap/Secret data; None leaves pods unhashed.
    config_hash: str | None = None
    # Keys the generated `<name>-auth-keys` Secret feeds into the pods' environment.
    generated_keys: tuple[str, ...] = ()
    # Replicas the Deployment runs when an autoscaler owns them (manageReplicas: false).
    observed_replicas: int | None = None


def effective_replicas(cluster: AidboxCluster, observed_replicas: int | None) -> int:
    """The replica count decisions follow: the spec's, unless another controller (an
    autoscaler; manageReplicas: false) owns it and the Deployment says what it chose."""
    if not cluster.spec.manage_replicas and observed_replicas is not None:
        return observed_replicas
    return cluster.spec.replicas


def render_cluster(
    cluster: AidboxCluster, context: RenderContext | None = None
) -> list[dict[str, Any]]:
    context = context or RenderContext()
    manifests = [
        build_deployment(cluster, context.config_hash, context.generated_keys),
        build_service(cluster),
    ]
    if wants_disruption_budget(cluster, effective_replicas(cluster, context.observed_replicas)):
        manifests.append(build_disruption_budget(cluster))
    if wants_service_monitor(cluster):
        manifests.append(build_service_monitor(cluster))
    return [stamp_applied_hash(m) for m in manifests]


def stamp_applied_hash(manifest: dict[str, Any]) -> dict[str, Any]:
    """Record a hash of the manifest on it, so a later pass can tell locally, without a
    request, whether what runs is what it would apply now."""
    applied_hash = stable_hash(manifest)
    manifest["metadata"].setdefault("annotations", {})[APPLIED_HASH_ANNOTATION] = applied_hash
    return manifest
