"""The AidboxCluster status: what the operator observed, following Kubernetes API conventions.

`observedGeneration`, `Ready`/`Progressing`/`Degraded` conditions and the scale subresource's
`replicas`/`selector` are what `kubectl wait`, autoscalers and GitOps health checks read.
"""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

ConditionStatus = Literal["True", "False", "Unknown"]
Phase = Literal["Pending", "Progressing", "Ready", "Degraded", "Invalid", "Stopped", "Paused"]
PHASES: tuple[str, ...] = get_args(Phase)

READY = "Ready"
PROGRESSING = "Progressing"
DEGRADED = "Degraded"
# kstatus conventions (sigs.k8s.io/cli-utils), read by Flux and kpt.
RECONCILING = "Reconciling"
STALLED = "Stalled"
CONDITION_TYPES = (READY, PROGRESSING, DEGRADED, RECONCILING, STALLED)


class StatusModel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True
    )


class Condition(StatusModel):
    """One aspect of the cluster's state (metav1.Condition)."""

    type: str = Field(description="Ready, Progressing, Degraded, Reconciling or Stalled.")
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: str = Field(description="CamelCase reason for the last transition.")
    message: str = Field(default="", description="Human-readable detail.")
    last_transition_time: str = Field(
        description="When status last changed (RFC 3339); unchanged while status stays the same."
    )
    observed_generation: int | None = Field(
        default=None, description="metadata.generation this condition was computed from."
    )

    def same_state(self, other: Condition) -> bool:
        return (self.status, self.reason, self.message) == (
            other.status,
            other.reason,
            other.message,
        )


class ClusterStatus(StatusModel):
    """Observed state of an AidboxCluster."""

    observed_generation: int | None = Field(
        default=None,
        description="Newest metadata.generation the operator has finished with: fully applied, "
        "or refused for good (then the Stalled condition says why). A held or paused change "
        "does not advance it.",
    )
    phase: Phase = Field(
        default="Pending",
        description="Summary: Pending, Progressing, Ready, Degraded, Invalid, Stopped or Paused.",
    )
    replicas: int = Field(default=0, description="Pods of the cluster (scale subresource).")
    ready_replicas: int = Field(default=0, description="Pods passing their readiness probe.")
    updated_replicas: int = Field(default=0, description="Pods running the current pod template.")
    ready: str = Field(default="0/0", description="ready/desired pods, for `kubectl get`.")
    selector: str = Field(default="", description="Label selector of the pods (scale subresource).")
    image: str = Field(default="", description="Image of the current pod template.")
    version: str = Field(default="", description="Aidbox release or channel of that image.")
    running_versions: dict[str, int] = Field(
        default_factory=dict,
        description="Aidbox versions the ready pods report on /health (about.version), with how "
        "many pods run each: one key when all replicas agree. Read only when the operator runs "
        "inside the cluster, where pod addresses are reachable.",
    )
    missing_references: list[str] = Field(
        default_factory=list,
        description="Referenced ConfigMaps/Secrets that do not exist, as Kind/name.",
    )
    conditions: list[Condition] = Field(default_factory=list, description="Current conditions.")

    def condition(self, type_: str) -> Condition | None:
        return next((c for c in self.conditions if c.type == type_), None)

    def to_api(self) -> dict[str, object]:
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


def merge_conditions(
    previous: list[Condition], computed: list[Condition], now: str
) -> list[Condition]:
    """Keep each condition's lastTransitionTime unless its status flipped (API conventions)."""
    old = {c.type: c for c in previous}
    merged = []
    for cond in computed:
        before = old.get(cond.type)
        if before is not None and before.status == cond.status:
            stamp = before.last_transition_time
        else:
            stamp = now
        merged.append(cond.model_copy(update={"last_transition_time": stamp}))
    return merged
