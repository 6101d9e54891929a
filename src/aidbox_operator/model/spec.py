"""The AidboxCluster spec: what a user writes. Defaults come from the seed HA Deployment.

Field names are camelCase on the wire (as Kubernetes users expect) and snake_case in Python.
Every field has a description: it becomes `kubectl explain` text through the generated CRD.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, field_validator, model_validator

from aidbox_operator.model.autoscaling import (
    AUTOSCALING_VALIDATIONS,
    AutoscalingSpec,
    check_autoscaling,
)
from aidbox_operator.model.backing import DatabaseSpec, InitBundleRef, LicenseRef
from aidbox_operator.model.base import KubeModel, Port
from aidbox_operator.model.constants import (
    AUTH_KEYS_SUFFIX,
    INSTANCE_LABEL,
    MAX_NAME_LENGTH,
    NAME_LABEL,
)
from aidbox_operator.model.exposure import HTTPRouteSpec, IngressSpec
from aidbox_operator.model.kubeschema import check_fields
from aidbox_operator.model.network import NetworkPolicySpec
from aidbox_operator.model.pod import (
    CONTAINER_LIST,
    MOUNT_LIST,
    POD_VALIDATIONS,
    VOLUME_LIST,
    Container,
    ExtraEnvFrom,
    Volume,
    VolumeMount,
    check_containers,
    check_volumes,
)
from aidbox_operator.model.windows import MaintenanceWindow

DEFAULT_IMAGE = "healthsamurai/aidboxone:latest"
DEFAULT_PORT = 8080
HEALTH_PATH = "/health"

# Kubernetes quantities ("500m", "1Gi", 2) are ints or strings on the wire.
Quantity = Annotated[
    int | str,
    WithJsonSchema(
        {
            "x-kubernetes-int-or-string": True,
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "pattern": r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$",  # noqa: E501
        }
    ),
]
IntOrPercent = Annotated[
    int | str,
    WithJsonSchema(
        {
            "x-kubernetes-int-or-string": True,
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            # A structural schema allows no constraints inside this anyOf: check with CEL.
            "x-kubernetes-validations": [
                {
                    "rule": "type(self) == int ? self >= 0 : self.matches('^[0-9]+%$')",
                    "message": "must be a whole number >= 0 or a percentage such as 25%",
                }
            ],
        }
    ),
]
# Objects passed through to Kubernetes as they are; the API server validates them there.
FreeForm = Annotated[
    dict[str, Any],
    WithJsonSchema({"type": "object", "x-kubernetes-preserve-unknown-fields": True}),
]
# Its required fields are checked at admission (a typo such as `maxskew` leaves `maxSkew`
# unset and is refused there); unknown names are refused by the model's validator.
SpreadConstraint = Annotated[
    dict[str, Any],
    WithJsonSchema(
        {
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": True,
            "required": ["maxSkew", "topologyKey", "whenUnsatisfiable"],
            "properties": {
                "maxSkew": {
                    "type": "integer",
                    "minimum": 1,
                    "description": "Largest allowed difference in pod count between domains.",
                },
                "topologyKey": {
                    "type": "string",
                    "minLength": 1,
                    "description": "Node label key whose values are the domains.",
                },
                "whenUnsatisfiable": {
                    "type": "string",
                    "enum": ["DoNotSchedule", "ScheduleAnyway"],
                    "description": "What the scheduler does when the skew cannot be kept.",
                },
            },
        }
    ),
]
LabelValue = Annotated[
    str, Field(max_length=63, pattern=r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
]


class EnvFromRef(KubeModel):
    """A ConfigMap or Secret whose keys become the container's environment."""

    name: str | None = Field(
        default=None,
        min_length=1,
        max_length=253,
        description="Object name. Defaults to the AidboxCluster's own name.",
    )
    optional: bool = Field(
        default=False,
        description="Start even when the object does not exist (as envFrom's optional flag). "
        "A required object that is missing holds the rollout and is reported in status.",
    )


class ProbeSpec(KubeModel):
    """An HTTP GET probe on Aidbox's /health endpoint."""

    enabled: bool = Field(default=True, description="Set false to omit this probe.")
    path: str = Field(default=HEALTH_PATH, pattern=r"^/", description="HTTP path to probe.")
    initial_delay_seconds: int = Field(
        default=20, ge=0, description="Seconds before the first probe."
    )
    timeout_seconds: int = Field(
        default=5, ge=1, description="Seconds after which a probe times out."
    )
    period_seconds: int = Field(default=5, ge=1, description="Seconds between probes.")
    success_threshold: int = Field(
        default=1, ge=1, description="Consecutive successes that count as success."
    )
    failure_threshold: int = Field(
        default=2, ge=1, description="Consecutive failures that count as failure."
    )


class LivenessProbeSpec(ProbeSpec):
    """Liveness probe: the kubelet restarts the container after failureThreshold failures."""

    failure_threshold: int = Field(
        default=4, ge=1, description="Consecutive failures before the container is restarted."
    )


class ReadinessProbeSpec(ProbeSpec):
    """Readiness probe: a pod gets Service traffic only while it passes."""

    failure_threshold: int = Field(
        default=2, ge=1, description="Consecutive failures before the pod leaves the Service."
    )


class StartupProbeSpec(ProbeSpec):
    """Startup probe: holds liveness and readiness back while Aidbox starts (package loading and
    migrations can take minutes on a first start)."""

    initial_delay_seconds: int = Field(
        default=0, ge=0, description="Seconds before the first probe."
    )
    period_seconds: int = Field(default=10, ge=1, description="Seconds between probes.")
    failure_threshold: int = Field(
        default=60,
        ge=1,
        description="Failures tolerated before the container is restarted "
        "(periodSeconds x failureThreshold is the start-up budget: 10 minutes by default).",
    )


class ServiceSpec(KubeModel):
    """The Service that balances across ready pods."""

    type: Literal["ClusterIP", "NodePort", "LoadBalancer"] = Field(
        default="ClusterIP", description="Service type."
    )
    port: Port = Field(default=DEFAULT_PORT, description="Port the Service listens on.")
    annotations: dict[str, str] = Field(
        default_factory=dict, description="Annotations for the Service (e.g. for load balancers)."
    )


class EnvVar(KubeModel):
    """An extra environment variable, as in a container's env."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!(has(self.value) && has(self.valueFrom))",
                    "message": "an env entry sets either value or valueFrom, not both",
                }
            ]
        }
    )

    name: str = Field(min_length=1, description="Variable name.")
    value: str | None = Field(default=None, description="Literal value.")
    value_from: FreeForm | None = Field(
        default=None,
        description="Source of the value (secretKeyRef, configMapKeyRef, fieldRef, ...).",
    )

    @field_validator("value_from")
    @classmethod
    def _known_source_fields(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        check_fields("V1EnvVarSource", value, "valueFrom")
        return value


class ResourceRequirements(KubeModel):
    """Compute resources of the Aidbox container."""

    requests: dict[str, Quantity] = Field(default_factory=dict, description="Minimum resources.")
    limits: dict[str, Quantity] = Field(default_factory=dict, description="Maximum resources.")


class Toleration(KubeModel):
    """A pod toleration, as in a pod spec."""

    key: str | None = Field(default=None, description="Taint key; empty with Exists matches all.")
    operator: Literal["Exists", "Equal"] | None = Field(
        default=None, description="Exists or Equal."
    )
    value: str | None = Field(default=None, description="Taint value for Equal.")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        default=None, description="Taint effect to match; empty matches all."
    )
    toleration_seconds: int | None = Field(
        default=None, description="How long a NoExecute taint is tolerated."
    )


class LocalObjectReference(KubeModel):
    """A reference to an object in the same namespace."""

    name: str = Field(min_length=1, description="Object name.")


class RollingUpdate(KubeModel):
    """How pods are replaced on a change. The default starts one new pod (which runs the
    schema migrations) before any old pod stops."""

    max_surge: IntOrPercent = Field(default=1, description="Pods above replicas during a rollout.")
    max_unavailable: IntOrPercent = Field(
        default=0, description="Pods below replicas during a rollout."
    )


class ServiceMonitorSpec(KubeModel):
    """A Prometheus Operator ServiceMonitor for Aidbox's metrics."""

    enabled: bool = Field(
        default=False,
        description="Keep a ServiceMonitor (needs the Prometheus Operator's CRD in the cluster).",
    )
    interval: str = Field(
        default="30s", pattern=r"^[0-9]+(ms|s|m|h)$", description="Scrape interval."
    )
    labels: dict[str, LabelValue] = Field(
        default_factory=dict,
        description="Labels on the ServiceMonitor, e.g. the one your Prometheus selects.",
    )


class MetricsSpec(KubeModel):
    """Aidbox's own Prometheus metrics (/metrics, /metrics/minutes, /metrics/hours)."""

    enabled: bool = Field(
        default=False,
        description="Set BOX_METRICS_PORT and expose the port on the pods and the Service.",
    )
    port: Port = Field(default=8765, description="Metrics port (BOX_METRICS_PORT).")
    service_monitor: ServiceMonitorSpec = Field(
        default_factory=lambda: ServiceMonitorSpec(), description="Optional ServiceMonitor."
    )


class DisruptionBudgetSpec(KubeModel):
    """Limits voluntary disruption (node drains) so the cluster keeps serving."""

    enabled: bool = Field(default=True, description="Keep a PodDisruptionBudget.")
    max_unavailable: IntOrPercent = Field(
        default=1, description="Pods that may be down at once through voluntary disruption."
    )
    # An unready Aidbox pod serves nothing: evicting it costs no availability, while keeping it
    # blocks every node drain for as long as the pods are unready (a database outage, say).
    # The price: a pod still starting (running migrations) may be evicted by a drain.
    unhealthy_pod_eviction_policy: Literal["AlwaysAllow", "IfHealthyBudget"] = Field(
        default="AlwaysAllow",
        description="Whether a drain may evict pods that are not Ready (AlwaysAllow: a drain "
        "never waits on pods that serve nothing, e.g. during a database outage; "
        "IfHealthyBudget: only while the budget holds, so a pod still starting is not evicted).",
    )


class AuthKeysSpec(KubeModel):
    """Every replica must sign and check tokens with the same keys, or a token issued by one
    replica is refused by another."""

    generate: bool = Field(
        default=True,
        description="Create a Secret <name>-auth-keys (RSA 2048 key pair and a random secret) "
        "once, and feed it to every pod, unless the referenced Secret already sets "
        "BOX_SECURITY_AUTH_KEYS_PRIVATE.",
    )
    on_loss: Literal["Hold", "Regenerate"] = Field(
        default="Hold",
        description="What to do when the generated Secret is deleted while pods use it. Hold: "
        "report it (Stalled/AuthKeysMissing, a Warning Event) and change nothing until the "
        "Secret is restored. Regenerate: create new keys and roll the pods; every token issued "
        "before stops working.",
    )


class UpgradeSpec(KubeModel):
    """How a change of Aidbox release is rolled out. Aidbox migrates its database when a new
    release starts and has no downgrade path."""

    strategy: Literal["Rolling", "Recreate"] = Field(
        default="Rolling",
        description="Rolling: one pod of the new release starts first (it runs the migrations) "
        "while the old pods serve. Recreate: every old pod stops before the new release "
        "starts, for releases whose notes forbid mixed versions (downtime). Applies to "
        "release changes; other changes roll as rollingUpdate says.",
    )
    tag_refresh: str = Field(
        default="",
        max_length=63,
        description="A moving tag (latest, stable, 2510) is pinned to the digest it named when "
        "first seen and stays there; set this to a new value (any string, e.g. a date) to pin "
        "the tag again to what it names now.",
    )


class AidboxClusterSpec(KubeModel):
    """Desired state of a highly available Aidbox (or Multibox) deployment."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!(has(self.image) && has(self.channel))",
                    "message": "set image or channel, not both: a cluster on a channel takes "
                    "its image from the AidboxReleaseChannel",
                },
                {
                    "rule": "!(has(self.ingress) && has(self.httpRoute))",
                    "message": "set ingress or httpRoute, not both: the cluster has one URL",
                },
                *POD_VALIDATIONS,
                *AUTOSCALING_VALIDATIONS,
            ]
        }
    )

    image: str = Field(
        default=DEFAULT_IMAGE,
        min_length=1,
        max_length=512,
        pattern=r"^[^\s]+$",
        description="Aidbox image: healthsamurai/aidboxone or healthsamurai/multibox with a tag "
        "(YYMM, YYMM.MINOR, or a channel: latest, edge, stable). More than one replica needs "
        "release 2208 or newer. Default healthsamurai/aidboxone:latest; not set together with "
        "channel.",
    )
    channel: str | None = Field(
        default=None,
        min_length=1,
        max_length=253,
        pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$",
        description="Name of an AidboxReleaseChannel to take the image from, instead of image: "
        "the channel moves this cluster to a new release in its wave.",
    )
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = Field(
        default="Always", description="When the kubelet pulls the image."
    )
    image_pull_secrets: list[LocalObjectReference] = Field(
        default_factory=list, description="Secrets for pulling the image from a private registry."
    )
    replicas: int = Field(
        default=2,
        ge=0,
        le=1000,
        description="Number of Aidbox pods. Also set by `kubectl scale` and autoscalers "
        "through the scale subresource. With autoscaling or manageReplicas false it is only "
        "the count the Deployment is created with (within autoscaling's bounds), and a change "
        "of it is refused: the replicas are not the operator's to set then.",
    )
    manage_replicas: bool = Field(
        default=True,
        description="Set false to leave the Deployment's replicas to another controller, such as "
        "a HorizontalPodAutoscaler of yours that targets the Deployment directly (spec.replicas "
        "then only sets the count it is created with). Not false together with autoscaling.",
    )
    autoscaling: AutoscalingSpec | None = Field(
        default=None,
        description="Keep a HorizontalPodAutoscaler (autoscaling/v2, named like the cluster) on "
        "the Deployment, which then chooses the replicas; the PodDisruptionBudget and the "
        "release checks follow its choice. Needs a metrics server (metrics.k8s.io) in the "
        "cluster. Absent: none (one the operator made before is deleted, and spec.replicas "
        "counts again).",
    )
    port: Port = Field(default=DEFAULT_PORT, description="Aidbox web port inside the pod.")
    config_map_ref: EnvFromRef = Field(
        default_factory=EnvFromRef,
        description="ConfigMap with Aidbox settings (envFrom). Defaults to the cluster's name.",
    )
    secret_ref: EnvFromRef = Field(
        default_factory=EnvFromRef,
        description="Secret with Aidbox credentials and license (envFrom). Defaults to the "
        "cluster's name.",
    )
    env: list[EnvVar] = Field(
        default_factory=list,
        max_length=256,
        description="Extra environment variables; they win over envFrom. The operator sets "
        "BOX_INSTANCE_NAME to each pod's name, and JAVA_OPTS while a memory limit is in force "
        "(-XX:MaxRAMPercentage=70), unless this list or a referenced ConfigMap/Secret sets "
        "them.",
    )
    extra_env_from: list[ExtraEnvFrom] = Field(
        default_factory=list,
        max_length=32,
        description="More ConfigMaps/Secrets whose keys become the Aidbox container's "
        "environment, after configMapRef and secretRef (a later source wins a key). Like "
        "those, a change of their data rolls the pods, and a missing required one holds the "
        "rollout.",
    )
    resources: ResourceRequirements = Field(
        default_factory=ResourceRequirements,
        description="CPU and memory requests and limits of the Aidbox container. When neither "
        "requests nor limits are set, the operator requests cpu 500m and memory 2Gi and limits "
        "memory to 2Gi (the pods are then never BestEffort, the first evicted), and sets "
        "JAVA_OPTS=-XX:MaxRAMPercentage=70 so the heap fits the limit.",
    )
    liveness_probe: LivenessProbeSpec = Field(
        default_factory=LivenessProbeSpec, description="Liveness probe on /health."
    )
    readiness_probe: ReadinessProbeSpec = Field(
        default_factory=ReadinessProbeSpec, description="Readiness probe on /health."
    )
    startup_probe: StartupProbeSpec = Field(
        default_factory=StartupProbeSpec, description="Startup probe on /health."
    )
    service: ServiceSpec = Field(default_factory=ServiceSpec, description="The cluster's Service.")
    pod_labels: dict[str, LabelValue] = Field(
        default_factory=dict,
        description="Extra labels on the pods.",
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": f"!('{NAME_LABEL}' in self) && !('{INSTANCE_LABEL}' in self)",
                    "message": f"podLabels must not set {NAME_LABEL} or {INSTANCE_LABEL}: the "
                    "operator uses them to select the cluster's pods",
                }
            ]
        },
    )
    pod_annotations: dict[str, str] = Field(
        default_factory=dict, description="Extra annotations on the pods."
    )
    node_selector: dict[str, str] = Field(
        default_factory=dict, description="Node labels the pods must be scheduled on."
    )
    tolerations: list[Toleration] = Field(
        default_factory=list, max_length=64, description="Pod tolerations."
    )
    service_account_name: str | None = Field(
        default=None, min_length=1, description="ServiceAccount the pods run as."
    )
    automount_service_account_token: bool = Field(
        default=False,
        description="Mount the ServiceAccount's API token into the pods. Off by default: "
        "Aidbox never calls the Kubernetes API, and a token it does not need is one an "
        "intruder could use.",
    )
    priority_class_name: str | None = Field(
        default=None,
        min_length=1,
        max_length=253,
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$",
        description="PriorityClass of the pods (a DNS subdomain), e.g. to keep Aidbox "
        "scheduled ahead of batch work when nodes are short.",
    )
    affinity: FreeForm | None = Field(
        default=None,
        description="Pod affinity (nodeAffinity, podAffinity, podAntiAffinity), passed "
        "through as written; unknown field names are refused. Pods are spread over zones and "
        "nodes by topologySpreadConstraints already.",
    )
    pod_security_context: FreeForm | None = Field(
        default=None,
        description="The pod's securityContext (fsGroup, runAsGroup, sysctls, ...), passed "
        "through as written; unknown field names are refused.",
    )
    container_security_context: FreeForm | None = Field(
        default=None,
        description="The Aidbox container's securityContext, merged key by key over the "
        "operator's hardened default (allowPrivilegeEscalation false, capabilities drop ALL, "
        "runAsNonRoot true, runAsUser 1000, seccompProfile RuntimeDefault): a key set here "
        "replaces that key whole (capabilities included), the others stay. With "
        "readOnlyRootFilesystem true the operator mounts an emptyDir at /tmp (volume "
        "aidbox-tmp), where Aidbox's JVM writes, unless volumeMounts mounts something there.",
    )
    volumes: list[Volume] = Field(
        default_factory=list,
        max_length=64,
        description="Extra pod volumes, as in a pod spec; each needs a unique name, other "
        "than the operator's own aidbox-tmp and aidbox-init-bundle.",
        json_schema_extra=VOLUME_LIST,
    )
    volume_mounts: list[VolumeMount] = Field(
        default_factory=list,
        max_length=64,
        description="Mounts of spec.volumes into the Aidbox container (name, mountPath, "
        "readOnly, subPath, ...); mountPaths are unique.",
        json_schema_extra=MOUNT_LIST,
    )
    init_containers: list[Container] = Field(
        default_factory=list,
        max_length=16,
        description="Containers run to completion, in order, before Aidbox starts in each "
        "pod; each needs a name (not main) and an image.",
        json_schema_extra=CONTAINER_LIST,
    )
    sidecars: list[Container] = Field(
        default_factory=list,
        max_length=16,
        description="Containers run beside Aidbox in each pod, after it in the pod's "
        "containers; each needs a name (not main, the Aidbox container's) and an image.",
        json_schema_extra=CONTAINER_LIST,
    )
    rolling_update: RollingUpdate = Field(
        default_factory=RollingUpdate, description="Rollout pace of the Deployment."
    )
    min_ready_seconds: int = Field(
        default=0,
        ge=0,
        description="Seconds a new pod must be ready before it counts as available.",
    )
    progress_deadline_seconds: int = Field(
        default=600,
        ge=1,
        description="Seconds a rollout may make no progress before it is reported stuck.",
    )
    termination_grace_period_seconds: int = Field(
        default=60,
        ge=1,
        description="Seconds a stopping pod gets before it is killed (covers the preStop pause).",
    )
    pre_stop_delay_seconds: int = Field(
        default=10,
        ge=0,
        description="Seconds a stopping pod keeps serving so that it leaves the Service's "
        "endpoints before Aidbox stops; 0 turns the pause off.",
    )
    topology_spread_constraints: list[SpreadConstraint] | None = Field(
        default=None,
        max_length=16,
        description="Pod topologySpreadConstraints. Unset: spread across zones and nodes "
        "(maxSkew 1, ScheduleAnyway). An empty list turns spreading off.",
    )
    pod_disruption_budget: DisruptionBudgetSpec = Field(
        default_factory=lambda: DisruptionBudgetSpec(),
        description="PodDisruptionBudget kept while replicas >= 2.",
    )
    metrics: MetricsSpec = Field(
        default_factory=lambda: MetricsSpec(),
        description="Aidbox's Prometheus metrics: port, Service port and ServiceMonitor.",
    )
    auth_keys: AuthKeysSpec = Field(
        default_factory=lambda: AuthKeysSpec(),
        description="Shared JWT signing keys (and Multibox cluster secret) for all replicas.",
    )
    upgrade: UpgradeSpec = Field(
        default_factory=lambda: UpgradeSpec(),
        description="How release changes roll out and when a moving tag is pinned again.",
    )
    ingress: IngressSpec | None = Field(
        default=None,
        description="An Ingress in front of the cluster's Service; absent: none (one the "
        "operator made before is deleted).",
    )
    http_route: HTTPRouteSpec | None = Field(
        default=None,
        description="A Gateway API HTTPRoute in front of the cluster's Service (needs the "
        "Gateway API CRDs); absent: none.",
    )
    network_policy: NetworkPolicySpec = Field(
        default_factory=lambda: NetworkPolicySpec(),
        description="An optional NetworkPolicy admitting only the named traffic to the pods.",
    )
    database: DatabaseSpec | None = Field(
        default=None,
        description="The PostgreSQL database; unset: BOX_DB_* come from the ConfigMap/Secret.",
    )
    license: LicenseRef | None = Field(
        default=None,
        description="Secret key holding the Aidbox license (BOX_LICENSE); unset: the Secret's.",
    )
    init_bundle: InitBundleRef | None = Field(
        default=None,
        description="ConfigMap key holding an init bundle, mounted as a file and named by "
        "BOX_INIT_BUNDLE; a change of its content rolls the pods.",
    )
    maintenance_windows: list[MaintenanceWindow] = Field(
        default_factory=list,
        max_length=16,
        description="When changes nobody asked for at that moment (this operator release's new "
        "pod rendering, a release channel's move) may start; empty: any time. Your own spec "
        "changes are applied at once.",
    )

    @field_validator("topology_spread_constraints")
    @classmethod
    def _known_spread_fields(
        cls, value: list[dict[str, Any]] | None
    ) -> list[dict[str, Any]] | None:
        for index, item in enumerate(value or []):
            check_fields("V1TopologySpreadConstraint", item, f"topologySpreadConstraints[{index}]")
        return value

    @field_validator("affinity")
    @classmethod
    def _known_affinity_fields(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        check_fields("V1Affinity", value, "affinity")
        return value

    @field_validator("pod_security_context")
    @classmethod
    def _known_pod_security_fields(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        check_fields("V1PodSecurityContext", value, "podSecurityContext")
        return value

    @field_validator("container_security_context")
    @classmethod
    def _known_security_fields(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        check_fields("V1SecurityContext", value, "containerSecurityContext")
        return value

    @model_validator(mode="after")
    def _pod_parts(self) -> AidboxClusterSpec:
        check_volumes(self.volumes, self.volume_mounts)
        check_containers(self.init_containers, self.sidecars)
        return self

    @model_validator(mode="after")
    def _scaler(self) -> AidboxClusterSpec:
        requests, limits = self.resources.requests, self.resources.limits
        check_autoscaling(self.autoscaling, self.manage_replicas, dict(requests), dict(limits))
        return self

    @property
    def replicas_left_to_others(self) -> bool:
        """Whether a controller other than the operator chooses the Deployment's replicas."""
        return self.autoscaling is not None or not self.manage_replicas

    @model_validator(mode="after")
    def _distinct_ports(self) -> AidboxClusterSpec:
        if self.metrics.enabled and self.metrics.port == self.port:
            raise ValueError(
                f"metrics.port {self.metrics.port} is also the web port: the pods cannot "
                "declare one container port twice; choose another metrics.port"
            )
        return self

    @model_validator(mode="after")
    def _one_url(self) -> AidboxClusterSpec:
        # The CEL rule's twin, for specs read outside the API server (render -f).
        if self.ingress is not None and self.http_route is not None:
            raise ValueError("set ingress or httpRoute, not both: the cluster has one URL")
        return self

    def config_map_name(self, cluster_name: str) -> str:
        return self.config_map_ref.name or cluster_name

    def secret_name(self, cluster_name: str) -> str:
        return self.secret_ref.name or cluster_name


ROOT_VALIDATIONS = [
    {
        "rule": f"self.metadata.name.size() <= {MAX_NAME_LENGTH}",
        "message": f"metadata.name must be at most {MAX_NAME_LENGTH} characters: the names "
        "derived from it must fit in 63-character DNS labels",
    },
    {
        "rule": f"!self.metadata.name.endsWith('{AUTH_KEYS_SUFFIX}')",
        "message": f"metadata.name must not end with {AUTH_KEYS_SUFFIX}: the cluster's children "
        "would share names with another cluster's generated keys Secret",
    },
    {
        "rule": "self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",
        "message": "metadata.name must be a DNS-1035 label (lowercase letters, digits and '-', "
        "starting with a letter): it names the cluster's Service",
    },
]


class ObjectMeta(BaseModel):
    """The parts of metadata the operator reads."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    name: str
    namespace: str = "default"
    uid: str | None = None
    generation: int | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class AidboxCluster(BaseModel):
    """A whole AidboxCluster object as read from the API or a file."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    metadata: ObjectMeta
    spec: AidboxClusterSpec = Field(default_factory=AidboxClusterSpec)

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def namespace(self) -> str:
        return self.metadata.namespace
