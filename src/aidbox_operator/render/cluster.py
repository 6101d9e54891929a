"""Everything one AidboxCluster is made of, in apply order."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aidbox_operator.model import AidboxCluster
from aidbox_operator.model.constants import APPLIED_HASH_ANNOTATION
from aidbox_operator.render.autoscaling import build_autoscaler, initial_replicas
from aidbox_operator.render.deployment import PodImage, build_deployment
from aidbox_operator.render.disruption import build_disruption_budget, wants_disruption_budget
from aidbox_operator.render.exposure import build_http_route, build_ingress
from aidbox_operator.render.hashing import stable_hash
from aidbox_operator.render.network import build_network_policy, wants_network_policy
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
    # The image the pods run: the digest a moving tag is pinned to (None: spec.image).
    image: str | None = None
    # The release that image runs, for the pods' version label (None: spec.image's tag).
    version: str | None = None
    # A release change under spec.upgrade.strategy Recreate: stop every old pod first.
    recreate: bool = False
    # Keys of the user's ConfigMaps/Secrets the pods' envFrom names: a variable set there
    # replaces an operator default (JAVA_OPTS, BOX_INSTANCE_NAME), as env would hide it.
    user_keys: frozenset[str] = frozenset()
    # The cluster's Deployment exists: with replicas left to another controller, a new one is
    # created with spec.replicas and an existing one's count is left alone.
    deployment_exists: bool = False
    # The operator's namespace while it reads the pods' /health: a NetworkPolicy lets it in.
    operator_namespace: str | None = None


def effective_replicas(cluster: AidboxCluster, observed_replicas: int | None) -> int:
    """The replica count decisions follow: the spec's, unless another controller (the
    HPA of spec.autoscaling; one of the user's with manageReplicas: false) owns it: then what
    the Deployment runs, or what a new one starts with."""
    if not cluster.spec.replicas_left_to_others:
        return cluster.spec.replicas
    return observed_replicas if observed_replicas is not None else initial_replicas(cluster)


def render_cluster(
    cluster: AidboxCluster, context: RenderContext | None = None
) -> list[dict[str, Any]]:
    context = context or RenderContext()
    manifests = [
        build_deployment(
            cluster,
            context.config_hash,
            context.generated_keys,
            PodImage(context.image or cluster.spec.image, context.version, context.recreate),
            context.user_keys,
            context.deployment_exists,
        ),
        build_service(cluster),
    ]
    if wants_disruption_budget(cluster, effective_replicas(cluster, context.observed_replicas)):
        manifests.append(build_disruption_budget(cluster))
    if wants_service_monitor(cluster):
        manifests.append(build_service_monitor(cluster))
    if cluster.spec.ingress is not None:
        manifests.append(build_ingress(cluster))
    if cluster.spec.http_route is not None:
        manifests.append(build_http_route(cluster))
    if cluster.spec.autoscaling is not None:
        manifests.append(build_autoscaler(cluster))
    if wants_network_policy(cluster):
        manifests.append(build_network_policy(cluster, context.operator_namespace))
    return [stamp_applied_hash(m) for m in manifests]


def with_annotation(manifest: dict[str, Any], key: str, value: str) -> dict[str, Any]:
    """A copy of a rendered manifest with one more annotation, its applied hash recomputed."""
    copy = {**manifest, "metadata": {**manifest["metadata"]}}
    annotations = dict(copy["metadata"].get("annotations") or {})
    annotations.pop(APPLIED_HASH_ANNOTATION, None)
    annotations[key] = value
    copy["metadata"]["annotations"] = annotations
    return stamp_applied_hash(copy)


def stamp_applied_hash(manifest: dict[str, Any]) -> dict[str, Any]:
    """Record a hash of the manifest on it, so a later pass can tell locally, without a
    request, whether what runs is what it would apply now."""
    applied_hash = stable_hash(manifest)
    manifest["metadata"].setdefault("annotations", {})[APPLIED_HASH_ANNOTATION] = applied_hash
    return manifest
