"""The AidboxCluster status: what the operator observed, following Kubernetes API conventions.

`observedGeneration`, `Ready`/`Progressing`/`Degraded` conditions and the scale subresource's
`replicas`/`selector` are what `kubectl wait`, autoscalers and GitOps health checks read.
"""

from __future__ import annotations

from collections.abc import Iterable
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


class VersionRecord(StatusModel):
    """The newest Aidbox release that has been Ready against this cluster's database."""

    newest_ready: str = Field(description="Release, e.g. 2510.2.")
    image: str = Field(default="", description="Image the ready pods of that release ran.")
    recorded_at: str = Field(default="", description="When it was first seen Ready.")


class PinnedImage(StatusModel):
    """A moving tag and the immutable image it was pinned to."""

    requested: str = Field(description="spec.image as written (a moving tag).")
    image: str = Field(description="The digest reference the pods run.")
    version: str = Field(
        default="", description="Release the image says it is (its OCI version label)."
    )
    refresh: str = Field(default="", description="spec.upgrade.tagRefresh it was pinned for.")
    pinned_at: str = Field(default="", description="When the tag was resolved.")


class UpgradeStatus(StatusModel):
    """A change of release while it rolls (and while it is held after a failure)."""

    from_version: str = Field(alias="from", description="Release the pods ran before.")
    to_version: str = Field(alias="to", description="Release being rolled out.")
    from_image: str = Field(default="", description="Image before the change.")
    to_image: str = Field(default="", description="Image being rolled out.")
    strategy: Literal["Rolling", "Recreate"] = Field(
        default="Rolling", description="The path this change takes."
    )
    reason: str = Field(default="", description="Why it takes that path.")
    started: str = Field(default="", description="When the change started.")
    pods: dict[str, int] = Field(
        default_factory=dict, description="Release -> pods (terminating ones excluded)."
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
    template_generation: int | None = Field(
        default=None,
        description="metadata.generation the Deployment was last applied for: a later change of "
        "its pod template for the same generation and configuration is the operator's own (a "
        "new operator release), paced across the fleet.",
    )
    version_record: VersionRecord | None = Field(
        default=None,
        description="The newest release that has been Ready against this database: an older "
        "spec.image is refused (DowngradeRefused) unless the aidbox.io/allow-downgrade-to "
        "annotation names it.",
    )
    pinned_image: PinnedImage | None = Field(
        default=None, description="The digest a moving tag in spec.image is pinned to."
    )
    replicas_at_hand_over: int | None = Field(
        default=None,
        description="spec.replicas when the Deployment's replicas were left to another "
        "controller (spec.autoscaling, manageReplicas false); a spec.replicas differing from it "
        "is not applied (Degraded/ReplicasNotApplied). Absent while the operator sets them.",
    )
    upgrade: UpgradeStatus | None = Field(
        default=None, description="The release change under way; absent when none is."
    )
    restarted_at: str | None = Field(
        default=None,
        description="The restart (aidbox.io/restart annotation, set by `kubectl aidbox "
        "restart`) the current pod template carries; absent before the first.",
    )
    url: str | None = Field(
        default=None,
        description="Where the cluster is served (its Ingress or HTTPRoute, as applied); "
        "absent when it has none.",
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


def new_conditions(
    states: Iterable[tuple[str, tuple[bool, str, str]]], generation: int | None
) -> list[Condition]:
    """Conditions from (type, (true?, reason, message)), for `generation`; transition times
    are filled in by merge_conditions."""
    return [
        Condition(
            type=type_,
            status="True" if state else "False",
            reason=reason,
            message=message,
            last_transition_time="",
            observed_generation=generation,
        )
        for type_, (state, reason, message) in states
    ]


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
