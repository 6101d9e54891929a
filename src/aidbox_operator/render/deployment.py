"""The Deployment of Aidbox pods, shaped like the seed HA document by default."""

from __future__ import annotations

from typing import Any

from aidbox_operator.model import AidboxCluster, ProbeSpec, parse_image_version
from aidbox_operator.model.constants import CONFIG_HASH_ANNOTATION, VERSION_LABEL
from aidbox_operator.model.spec import DEFAULT_PORT
from aidbox_operator.render.labels import common_labels, object_meta, selector_labels
from aidbox_operator.render.secrets import auth_keys_secret_name

CONTAINER_NAME = "main"
ZONE_KEY = "topology.kubernetes.io/zone"
HOSTNAME_KEY = "kubernetes.io/hostname"


def build_probe(probe: ProbeSpec, port: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": probe.path, "port": port, "scheme": "HTTP"},
        "initialDelaySeconds": probe.initial_delay_seconds,
        "timeoutSeconds": probe.timeout_seconds,
        "periodSeconds": probe.period_seconds,
        "successThreshold": probe.success_threshold,
        "failureThreshold": probe.failure_threshold,
    }


def build_env_from(cluster: AidboxCluster) -> list[dict[str, Any]]:
    spec = cluster.spec
    config_map: dict[str, Any] = {"name": spec.config_map_name(cluster.name)}
    secret: dict[str, Any] = {"name": spec.secret_name(cluster.name)}
    if spec.config_map_ref.optional:
        config_map["optional"] = True
    if spec.secret_ref.optional:
        secret["optional"] = True
    return [{"configMapRef": config_map}, {"secretRef": secret}]


def build_env(cluster: AidboxCluster, generated_keys: tuple[str, ...]) -> list[dict[str, Any]]:
    """Operator-provided variables first; a user's variable of the same name replaces ours."""
    env: dict[str, dict[str, Any]] = {}
    port = cluster.spec.port
    if port != DEFAULT_PORT:
        # Aidbox listens on 8080 unless told otherwise; the probes and Service follow spec.port.
        for name in ("BOX_WEB_PORT", "AIDBOX_PORT"):
            env[name] = {"name": name, "value": str(port)}
    if cluster.spec.metrics.enabled:
        env["BOX_METRICS_PORT"] = {
            "name": "BOX_METRICS_PORT",
            "value": str(cluster.spec.metrics.port),
        }
    keys_secret = auth_keys_secret_name(cluster)
    for key in generated_keys:
        env[key] = {"name": key, "valueFrom": {"secretKeyRef": {"name": keys_secret, "key": key}}}
    for var in cluster.spec.env:
        env[var.name] = var.model_dump(by_alias=True, exclude_none=True)
    return list(env.values())


def build_container(cluster: AidboxCluster, generated_keys: tuple[str, ...]) -> dict[str, Any]:
    spec = cluster.spec
    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": spec.image,
        "imagePullPolicy": spec.image_pull_policy,
        "ports": [{"name": "http", "containerPort": spec.port, "protocol": "TCP"}],
        "envFrom": build_env_from(cluster),
    }
    if spec.metrics.enabled:
        container["ports"].append(
            {"name": "metrics", "containerPort": spec.metrics.port, "protocol": "TCP"}
        )
    env = build_env(cluster, generated_keys)
    if env:
        container["env"] = env
    resources = spec.resources.model_dump(by_alias=True, exclude_defaults=True)
    if resources:
        container["resources"] = resources
    for field, probe in (
        ("livenessProbe", spec.liveness_probe),
        ("readinessProbe", spec.readiness_probe),
        ("startupProbe", spec.startup_probe),
    ):
        if probe.enabled:
            container[field] = build_probe(probe, spec.port)
    if spec.pre_stop_delay_seconds > 0:
        # Endpoint removal races the stop signal; serving a little longer lets every
        # load balancer drop the pod first. The sleep action needs nothing in the image.
        container["lifecycle"] = {"preStop": {"sleep": {"seconds": spec.pre_stop_delay_seconds}}}
    container["securityContext"] = {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "runAsNonRoot": True,
        # The Aidbox images run as user aidbox, uid 1000; runAsNonRoot needs it numeric.
        "runAsUser": 1000,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    return container


def build_spread(cluster: AidboxCluster) -> list[dict[str, Any]]:
    if cluster.spec.topology_spread_constraints is not None:
        return [dict(c) for c in cluster.spec.topology_spread_constraints]
    return [
        {
            "maxSkew": 1,
            "topologyKey": key,
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": selector_labels(cluster)},
            # Spread each ReplicaSet on its own, so a rollout's new pods spread too.
            "matchLabelKeys": ["pod-template-hash"],
        }
        for key in (ZONE_KEY, HOSTNAME_KEY)
    ]


def pod_labels(cluster: AidboxCluster) -> dict[str, str]:
    labels = {**cluster.spec.pod_labels, **common_labels(cluster)}
    version = parse_image_version(cluster.spec.image)
    if version.tag and len(version.tag) <= 63:
        labels[VERSION_LABEL] = version.tag
    return labels


def build_pod_spec(cluster: AidboxCluster, generated_keys: tuple[str, ...]) -> dict[str, Any]:
    spec = cluster.spec
    pod: dict[str, Any] = {
        "containers": [build_container(cluster, generated_keys)],
        # A Service named like an Aidbox variable prefix (e.g. "aidbox" -> AIDBOX_PORT) would
        # otherwise inject values Aidbox reads as its own settings.
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": spec.termination_grace_period_seconds,
    }
    spread = build_spread(cluster)
    if spread:
        pod["topologySpreadConstraints"] = spread
    if spec.image_pull_secrets:
        pod["imagePullSecrets"] = [{"name": s.name} for s in spec.image_pull_secrets]
    if spec.node_selector:
        pod["nodeSelector"] = dict(spec.node_selector)
    if spec.tolerations:
        pod["tolerations"] = [
            t.model_dump(by_alias=True, exclude_none=True) for t in spec.tolerations
        ]
    if spec.service_account_name:
        pod["serviceAccountName"] = spec.service_account_name
    return pod


def build_deployment(
    cluster: AidboxCluster,
    config_hash: str | None = None,
    generated_keys: tuple[str, ...] = (),
) -> dict[str, Any]:
    spec = cluster.spec
    annotations = dict(spec.pod_annotations)
    if config_hash:
        annotations[CONFIG_HASH_ANNOTATION] = config_hash
    template_meta: dict[str, Any] = {"labels": pod_labels(cluster)}
    if annotations:
        template_meta["annotations"] = annotations
    deployment_spec: dict[str, Any] = {}
    if spec.manage_replicas:
        deployment_spec["replicas"] = spec.replicas
    deployment_spec |= {
        "selector": {"matchLabels": selector_labels(cluster)},
        "strategy": {
            "type": "RollingUpdate",
            "rollingUpdate": {
                "maxSurge": spec.rolling_update.max_surge,
                "maxUnavailable": spec.rolling_update.max_unavailable,
            },
        },
        "minReadySeconds": spec.min_ready_seconds,
        "progressDeadlineSeconds": spec.progress_deadline_seconds,
        "template": {"metadata": template_meta, "spec": build_pod_spec(cluster, generated_keys)},
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": object_meta(cluster, cluster.name),
        "spec": deployment_spec,
    }
