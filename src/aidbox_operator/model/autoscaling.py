"""spec.autoscaling: a HorizontalPodAutoscaler (autoscaling/v2) the operator keeps in front of
the cluster's Deployment. Limits are the HPA API's own (its validation in Kubernetes'
pkg/apis/autoscaling), so a spec admitted here is never refused when the HPA is applied."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, model_validator
from pydantic.config import JsonDict

from aidbox_operator.model.base import KubeModel

# The HPA API's bounds: a policy's period at most 30 minutes, a stabilization window at most
# an hour.
MAX_POLICY_PERIOD = 1800
MAX_STABILIZATION_WINDOW = 3600
# Utilisation is a percentage of the pods' requests, so it may exceed 100 (pods using more
# than they request, up to their limit); the API only wants it above 0. The cap stops values
# that overflow the API's int32 or mean nothing.
MAX_UTILIZATION = 1000
MAX_REPLICAS = 1000
DEFAULT_CPU_TARGET = 80
MIN_ABOVE_MAX = "autoscaling.minReplicas (default 2) must not exceed autoscaling.maxReplicas"


class ScalingPolicy(KubeModel):
    """How much the HPA may change the replica count within one period."""

    type: Literal["Pods", "Percent"] = Field(
        description="Pods: value is a number of pods; Percent: a percentage of the current "
        "replicas."
    )
    value: int = Field(ge=1, le=MAX_REPLICAS * 100, description="Pods or percent; at least 1.")
    period_seconds: int = Field(
        ge=1,
        le=MAX_POLICY_PERIOD,
        description=f"Window the policy holds over, 1..{MAX_POLICY_PERIOD} seconds.",
    )


class ScalingRules(KubeModel):
    """Scaling in one direction; unset fields take the HPA's defaults."""

    stabilization_window_seconds: int | None = Field(
        default=None,
        ge=0,
        le=MAX_STABILIZATION_WINDOW,
        description="Seconds of past recommendations considered, so the count does not flap "
        f"(0..{MAX_STABILIZATION_WINDOW}; HPA default: 0 up, 300 down).",
    )
    select_policy: Literal["Max", "Min", "Disabled"] | None = Field(
        default=None,
        description="Which policy wins when several apply (Max by default); Disabled turns "
        "scaling in this direction off.",
    )
    policies: list[ScalingPolicy] | None = Field(
        default=None,
        min_length=1,
        max_length=10,
        description="Policies, at least one when set; unset: the HPA's defaults.",
    )


class ScalingBehavior(KubeModel):
    """The HPA's behavior: how fast it scales up and down."""

    scale_up: ScalingRules | None = Field(default=None, description="Scaling up.")
    scale_down: ScalingRules | None = Field(default=None, description="Scaling down.")


class AutoscalingSpec(KubeModel):
    """A HorizontalPodAutoscaler on the cluster's Deployment, owned by the AidboxCluster."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {"rule": "self.minReplicas <= self.maxReplicas", "message": MIN_ABOVE_MAX}
            ]
        }
    )

    min_replicas: int = Field(
        default=2,
        ge=1,
        le=MAX_REPLICAS,
        description="Fewest pods (at least 1; default 2, so a drain or a pod failure never "
        "stops the cluster).",
    )
    max_replicas: int = Field(ge=1, le=MAX_REPLICAS, description="Most pods; at least minReplicas.")
    target_cpu_utilization_percentage: int | None = Field(
        default=None,
        # The name the HPA's v1 API and most charts use (to_camel would say targetCpu...).
        alias="targetCPUUtilizationPercentage",
        ge=1,
        le=MAX_UTILIZATION,
        description="Average CPU use across the pods, as a percentage of their CPU request, "
        "that the HPA aims at (may exceed 100). When neither this nor "
        f"targetMemoryUtilizationPercentage is set: {DEFAULT_CPU_TARGET}.",
    )
    target_memory_utilization_percentage: int | None = Field(
        default=None,
        ge=1,
        le=MAX_UTILIZATION,
        description="Average memory use as a percentage of the pods' memory request that the "
        "HPA aims at. The JVM seldom returns memory, so this mostly scales up.",
    )
    behavior: ScalingBehavior | None = Field(
        default=None,
        description="Scale-up and scale-down rules (the HPA's behavior); unset: its defaults.",
    )

    @model_validator(mode="after")
    def _ordered(self) -> AutoscalingSpec:
        # The CEL rule's twin, for specs read outside the API server (render -f).
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"{MIN_ABOVE_MAX} ({self.min_replicas} > {self.max_replicas})")
        return self

    def cpu_target(self) -> int | None:
        if self.target_cpu_utilization_percentage is not None:
            return self.target_cpu_utilization_percentage
        return None if self.target_memory_utilization_percentage else DEFAULT_CPU_TARGET

    def clamp(self, replicas: int) -> int:
        """The count within minReplicas..maxReplicas nearest `replicas`."""
        return max(self.min_replicas, min(self.max_replicas, replicas))


# When the HPA's metric is in use: memory only when asked for, CPU when asked for or when
# nothing is (its default target).
_IN_USE = {
    "cpu": "has(self.autoscaling.targetCPUUtilizationPercentage) || "
    "!has(self.autoscaling.targetMemoryUtilizationPercentage)",
    "memory": "has(self.autoscaling.targetMemoryUtilizationPercentage)",
}
_TARGET_FIELD = {
    "cpu": "targetCPUUtilizationPercentage",
    "memory": "targetMemoryUtilizationPercentage",
}


def _requested(resource: str) -> str:
    """CEL: the Aidbox container requests `resource`: the operator's default resources (the
    spec sets none), or a request, or a limit (Kubernetes then requests the limit)."""
    none_set = (
        "(!has(self.resources.requests) || size(self.resources.requests) == 0) && "
        "(!has(self.resources.limits) || size(self.resources.limits) == 0)"
    )
    return (
        f"!has(self.resources) || ({none_set}) || "
        f"(has(self.resources.requests) && '{resource}' in self.resources.requests) || "
        f"(has(self.resources.limits) && '{resource}' in self.resources.limits)"
    )


def _unrequested_message(resource: str) -> str:
    return (
        f"autoscaling on {resource} ({_TARGET_FIELD[resource]}"
        + (", or no target set: CPU 80%" if resource == "cpu" else "")
        + f") needs a {resource} request: resources sets requests/limits without {resource}, "
        "and the HPA measures utilisation against the request"
    )


def _request_rule(resource: str) -> JsonDict:
    return {
        "rule": f"!has(self.autoscaling) || !({_IN_USE[resource]}) || {_requested(resource)}",
        "message": _unrequested_message(resource),
    }


REPLICAS_WITH_HPA = (
    "spec.replicas cannot change while spec.autoscaling is set: the HorizontalPodAutoscaler "
    "chooses the replicas (change autoscaling.minReplicas/maxReplicas instead, or drop "
    "autoscaling to set the count yourself)"
)
REPLICAS_UNMANAGED = (
    "spec.replicas cannot change while manageReplicas is false: another controller chooses "
    "the Deployment's replicas and this value would not be applied (scale the Deployment, or "
    "set manageReplicas true)"
)
BOTH_SCALERS = (
    "set autoscaling or manageReplicas: false, not both: with autoscaling the operator's own "
    "HorizontalPodAutoscaler chooses the replicas (remove any autoscaler of yours on the "
    "Deployment)"
)
# Rules on the spec. The two with oldSelf judge updates only: `kubectl scale` on the
# AidboxCluster (its scale subresource writes spec.replicas) is refused with them instead of
# being accepted and never applied. The has() guards are for the API server's check of the
# spec's own default ({}), which it judges before defaulting the fields inside.
_SAME_REPLICAS = (
    "!has(self.replicas) || !has(oldSelf.replicas) || self.replicas == oldSelf.replicas"
)
_MANAGED = "!has(self.manageReplicas) || self.manageReplicas"
AUTOSCALING_VALIDATIONS: list[JsonDict] = [
    {"rule": f"!has(self.autoscaling) || {_MANAGED}", "message": BOTH_SCALERS},
    {"rule": f"!has(self.autoscaling) || {_SAME_REPLICAS}", "message": REPLICAS_WITH_HPA},
    {"rule": f"{_MANAGED} || {_SAME_REPLICAS}", "message": REPLICAS_UNMANAGED},
    _request_rule("cpu"),
    _request_rule("memory"),
]


def check_autoscaling(
    autoscaling: AutoscalingSpec | None,
    manage_replicas: bool,
    requests: dict[str, object],
    limits: dict[str, object],
) -> None:
    """The CEL rules' twins that need no previous object, for specs read outside the API
    server (render -f)."""
    if autoscaling is None:
        return
    if not manage_replicas:
        raise ValueError(BOTH_SCALERS)
    if not requests and not limits:
        return  # the operator's default resources request both
    in_use = {"cpu": autoscaling.cpu_target() is not None}
    in_use["memory"] = autoscaling.target_memory_utilization_percentage is not None
    for resource, used in in_use.items():
        if used and resource not in requests and resource not in limits:
            raise ValueError(_unrequested_message(resource))
