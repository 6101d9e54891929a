"""The Deployment of Aidbox pods, shaped like the seed HA document by default."""

from __future__ import annotations

from copy import deepcopy
from dataclasses import dataclass
from typing import Any

from aidbox_operator.model import AidboxCluster, ProbeSpec, parse_image_version
from aidbox_operator.model.constants import (
    CONFIG_HASH_ANNOTATION,
    CONTAINER_NAME,
    RESTART_ANNOTATION,
    RESTARTED_AT_ANNOTATION,
    TMP_VOLUME,
    VERSION_LABEL,
)
from aidbox_operator.model.spec import DEFAULT_PORT
from aidbox_operator.render.autoscaling import (
    REPLICAS_LEFT_TO_ANNOTATION,
    initial_replicas,
    replicas_owner,
)
from aidbox_operator.render.backing import backing_env, backing_mounts, backing_volumes
from aidbox_operator.render.exposure import exposure_env
from aidbox_operator.render.labels import common_labels, object_meta, selector_labels
from aidbox_operator.render.secrets import auth_keys_secret_name


@dataclass(frozen=True)
class PodImage:
    """What the pods run and how a change of it rolls out."""

    image: str
    # Release for the version label (None: the image's tag).
    version: str | None = None
    # Stop every old pod before the new release starts (spec.upgrade.strategy Recreate).
    recreate: bool = False


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


# Resources of an Aidbox container whose spec sets none, so its pods are never BestEffort
# (the first evicted when a node runs short). No Health Samurai sizing guide was found; their
# Helm chart (HealthSamurai/helm-charts, aidbox/values.yaml) requests cpu 500m (kept here) and
# memory 256Mi with no limit, little for a JVM server that loads FHIR packages. 2Gi is our
# own modest choice, not a vendor figure; memory request equals its limit, so a node never
# promised the pod less than it may use. No CPU limit: throttling would stretch start-up
# (migrations, package loading) and GC pauses.
DEFAULT_REQUESTS = {"cpu": "500m", "memory": "2Gi"}
DEFAULT_LIMITS = {"memory": "2Gi"}
# Share of the memory limit the JVM heap may take (it sizes the heap from the container's
# limit); the rest is metaspace, thread stacks, code cache and direct buffers.
HEAP_PERCENT = 70
JAVA_OPTS = "JAVA_OPTS"
INSTANCE_NAME = "BOX_INSTANCE_NAME"
# The Aidbox container's securityContext unless the spec replaces a key.
HARDENED_SECURITY_CONTEXT: dict[str, Any] = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "runAsNonRoot": True,
    # The Aidbox images run as user aidbox, uid 1000; runAsNonRoot needs it numeric.
    "runAsUser": 1000,
    "seccompProfile": {"type": "RuntimeDefault"},
}
# Where Aidbox writes inside its container, made writable (emptyDir volumes) when the root
# filesystem is read-only. /tmp is the JVM's java.io.tmpdir: its performance-data file
# (hsperfdata), native libraries unpacked at start, and any temporary file. We found
# no other path documented; anything else a deployment needs (a package cache, say) goes
# through spec.volumes and spec.volumeMounts.
SCRATCH_PATHS = ((TMP_VOLUME, "/tmp"),)


def build_env_from(cluster: AidboxCluster) -> list[dict[str, Any]]:
    spec = cluster.spec
    config_map: dict[str, Any] = {"name": spec.config_map_name(cluster.name)}
    secret: dict[str, Any] = {"name": spec.secret_name(cluster.name)}
    if spec.config_map_ref.optional:
        config_map["optional"] = True
    if spec.secret_ref.optional:
        secret["optional"] = True
    sources: list[dict[str, Any]] = [{"configMapRef": config_map}, {"secretRef": secret}]
    for extra in spec.extra_env_from:
        sources.append(extra.model_dump(by_alias=True, exclude_none=True, exclude_defaults=True))
    return sources


def build_resources(cluster: AidboxCluster) -> dict[str, Any]:
    resources = cluster.spec.resources.model_dump(by_alias=True, exclude_defaults=True)
    return resources or {"requests": dict(DEFAULT_REQUESTS), "limits": dict(DEFAULT_LIMITS)}


def _default_env(cluster: AidboxCluster, user_keys: frozenset[str]) -> dict[str, dict[str, Any]]:
    """Defaults a variable of the user's (spec.env, the referenced ConfigMaps/Secrets) replaces;
    envFrom cannot replace env, so ours is left out when the user's configuration has one."""
    env: dict[str, dict[str, Any]] = {}
    if INSTANCE_NAME not in user_keys:
        # Aidbox labels its metrics and logs with it: one name per pod, not per cluster.
        env[INSTANCE_NAME] = {
            "name": INSTANCE_NAME,
            "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}},
        }
    if JAVA_OPTS not in user_keys and "memory" in build_resources(cluster).get("limits", {}):
        # Without a limit the percentage would be of the node's memory: leave the JVM's own
        # default (a quarter of it) alone then.
        env[JAVA_OPTS] = {"name": JAVA_OPTS, "value": f"-XX:MaxRAMPercentage={HEAP_PERCENT}"}
    return env


def build_env(
    cluster: AidboxCluster,
    generated_keys: tuple[str, ...],
    user_keys: frozenset[str] = frozenset(),
) -> list[dict[str, Any]]:
    """Operator-provided variables first; a user's variable of the same name replaces ours.
    `user_keys`: the keys of the ConfigMaps/Secrets the container's envFrom names."""
    env = _default_env(cluster, user_keys)
    for derived in (*exposure_env(cluster, user_keys), *backing_env(cluster)):
        env[derived["name"]] = derived
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


def build_security_context(cluster: AidboxCluster) -> dict[str, Any]:
    # Copies: a manifest is handed on (applied, cached, compared) and must share nothing with
    # the spec or with another cluster's manifest.
    return deepcopy(
        {**HARDENED_SECURITY_CONTEXT, **(cluster.spec.container_security_context or {})}
    )


def scratch_volumes(cluster: AidboxCluster) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(volume, mount) of each emptyDir the Aidbox container needs to write where its root
    filesystem is read-only; a path the user mounts something at is left to that mount."""
    if build_security_context(cluster).get("readOnlyRootFilesystem") is not True:
        return []
    taken = {m.get("mountPath") for m in cluster.spec.volume_mounts}
    return [
        ({"name": name, "emptyDir": {}}, {"name": name, "mountPath": path})
        for name, path in SCRATCH_PATHS
        if path not in taken
    ]


def build_container(
    cluster: AidboxCluster,
    generated_keys: tuple[str, ...],
    image: str,
    user_keys: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    spec = cluster.spec
    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": image,
        "imagePullPolicy": spec.image_pull_policy,
        "ports": [{"name": "http", "containerPort": spec.port, "protocol": "TCP"}],
        "envFrom": build_env_from(cluster),
        # Aidbox writes no termination message: its log tail stands in, so status can say why
        # a pod stopped (status/database.py reads a database failure from it).
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    if spec.metrics.enabled:
        container["ports"].append(
            {"name": "metrics", "containerPort": spec.metrics.port, "protocol": "TCP"}
        )
    env = build_env(cluster, generated_keys, user_keys)
    if env:
        container["env"] = env
    container["resources"] = build_resources(cluster)
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
    container["securityContext"] = build_security_context(cluster)
    mounts = deepcopy(spec.volume_mounts) + [m for _, m in scratch_volumes(cluster)]
    mounts += backing_mounts(cluster)
    if mounts:
        container["volumeMounts"] = mounts
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


def pod_labels(cluster: AidboxCluster, version: str | None = None) -> dict[str, str]:
    labels = {**cluster.spec.pod_labels, **common_labels(cluster)}
    value = version or parse_image_version(cluster.spec.image).tag
    if value and len(value) <= 63:
        labels[VERSION_LABEL] = value
    return labels


def build_pod_spec(
    cluster: AidboxCluster,
    generated_keys: tuple[str, ...],
    image: str,
    user_keys: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    spec = cluster.spec
    pod: dict[str, Any] = {}
    if spec.init_containers:
        pod["initContainers"] = deepcopy(spec.init_containers)
    pod |= {
        # The Aidbox container first: status and upgrades read containers[0].
        "containers": [
            build_container(cluster, generated_keys, image, user_keys),
            *deepcopy(spec.sidecars),
        ],
        # A Service named like an Aidbox variable prefix (e.g. "aidbox" -> AIDBOX_PORT) would
        # otherwise inject values Aidbox reads as its own settings.
        "enableServiceLinks": False,
        "automountServiceAccountToken": spec.automount_service_account_token,
        "terminationGracePeriodSeconds": spec.termination_grace_period_seconds,
    }
    volumes = deepcopy(spec.volumes) + [v for v, _ in scratch_volumes(cluster)]
    volumes += backing_volumes(cluster)
    if volumes:
        pod["volumes"] = volumes
    return pod | _scheduling(cluster)


def _scheduling(cluster: AidboxCluster) -> dict[str, Any]:
    """Where and as whom the pods run."""
    spec = cluster.spec
    pod: dict[str, Any] = {}
    spread = build_spread(cluster)
    if spread:
        pod["topologySpreadConstraints"] = spread
    if spec.affinity:
        pod["affinity"] = deepcopy(spec.affinity)
    if spec.priority_class_name:
        pod["priorityClassName"] = spec.priority_class_name
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
    if spec.pod_security_context:
        pod["securityContext"] = deepcopy(spec.pod_security_context)
    return pod


def build_strategy(cluster: AidboxCluster, recreate: bool) -> dict[str, Any]:
    if recreate:
        return {"type": "Recreate"}
    rolling = cluster.spec.rolling_update
    return {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": rolling.max_surge, "maxUnavailable": rolling.max_unavailable},
    }


def build_deployment(
    cluster: AidboxCluster,
    config_hash: str | None = None,
    generated_keys: tuple[str, ...] = (),
    pod_image: PodImage | None = None,
    user_keys: frozenset[str] = frozenset(),
    exists: bool = False,
) -> dict[str, Any]:
    """`user_keys`: the keys of the ConfigMaps/Secrets the Aidbox container's envFrom names
    (they replace the operator's defaults of the same names). `exists`: the Deployment is
    there already (its replicas may be another controller's then)."""
    spec = cluster.spec
    pod_image = pod_image or PodImage(spec.image)
    annotations = dict(spec.pod_annotations)
    if config_hash:
        annotations[CONFIG_HASH_ANNOTATION] = config_hash
    if restart := cluster.metadata.annotations.get(RESTART_ANNOTATION):
        annotations[RESTARTED_AT_ANNOTATION] = restart
    template_meta: dict[str, Any] = {"labels": pod_labels(cluster, pod_image.version)}
    if annotations:
        template_meta["annotations"] = annotations
    deployment_spec: dict[str, Any] = {}
    own_annotations: dict[str, str] = {}
    if not spec.replicas_left_to_others:
        deployment_spec["replicas"] = spec.replicas
    elif not exists:
        # Created with the count asked for; the next pass hands it over (see the annotation).
        deployment_spec["replicas"] = initial_replicas(cluster)
    else:
        own_annotations[REPLICAS_LEFT_TO_ANNOTATION] = replicas_owner(cluster)
    deployment_spec |= {
        "selector": {"matchLabels": selector_labels(cluster)},
        "strategy": build_strategy(cluster, pod_image.recreate),
        "minReadySeconds": spec.min_ready_seconds,
        "progressDeadlineSeconds": spec.progress_deadline_seconds,
        "template": {
            "metadata": template_meta,
            "spec": build_pod_spec(cluster, generated_keys, pod_image.image, user_keys),
        },
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": object_meta(cluster, cluster.name, own_annotations),
        "spec": deployment_spec,
    }
