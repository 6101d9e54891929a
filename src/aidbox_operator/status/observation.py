"""What one reconcile pass saw, handed to the status computation as one value."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aidbox_operator.model.status import PinnedImage
from aidbox_operator.status.blockers import Blocker
from aidbox_operator.status.pods import PodSummary


@dataclass(frozen=True)
class Observation:
    generation: int | None
    # Replicas the cluster should run: the spec's, or the Deployment's own when another
    # controller (an HPA) manages them.
    desired_replicas: int
    selector: str
    deployment: dict[str, Any] | None
    pods: tuple[PodSummary, ...] = ()
    blocker: Blocker | None = None
    missing: tuple[str, ...] = ()
    # (reason, message) of problems that degrade the cluster without blocking it.
    problems: tuple[tuple[str, str], ...] = ()
    # The desired state differs from what runs (only known while a change is held or paused).
    pending: bool = False
    # Aidbox version -> ready pods reporting it on /health (empty when not read).
    versions: tuple[tuple[str, int], ...] = ()
    # The digest a moving tag in spec.image is pinned to (None: spec.image is used as written).
    pinned: PinnedImage | None = None
    # (reason, message) when a change the pods would take waits its turn: a pod-template change
    # nobody asked for waiting for a rollout slot (RolloutQueued), or a channel's new release
    # waiting for the cluster's wave (WaveQueued, ChannelHalted). None when nothing waits.
    queued: tuple[str, str] | None = None
    # The generation this pass applied the Deployment for (None: it did not).
    template_generation: int | None = None
    # The URL the applied Ingress/HTTPRoute serves ("" none; None: not known on this pass,
    # which applied nothing, so the last one reported stands).
    url: str | None = None
    # Who chooses the Deployment's replicas when the operator does not (None: it does), and
    # spec.replicas as written (None: not read on this pass).
    replicas_left_to: str | None = None
    spec_replicas: int | None = None


@dataclass(frozen=True)
class Rollout:
    """The Deployment controller's own report, reduced to what status needs."""

    replicas: int
    ready: int
    updated: int
    complete: bool
    stuck: bool
    # Why the API server refuses the Deployment's new pods (its ReplicaFailure condition: a
    # ResourceQuota, a LimitRange, an admission webhook), "" when it does not.
    refused: str = ""

    @classmethod
    def of(cls, deployment: dict[str, Any] | None, desired: int) -> Rollout:
        status = (deployment or {}).get("status") or {}
        generation = (deployment or {}).get("metadata", {}).get("generation", 0)
        current = (status.get("observedGeneration") or 0) >= generation
        replicas = int(status.get("replicas", 0))
        updated = int(status.get("updatedReplicas", 0))
        complete = (
            deployment is not None
            and current
            and updated >= desired
            and replicas == updated
            and int(status.get("availableReplicas", 0)) >= desired
        )
        progressing: dict[str, Any] = next(
            (c for c in status.get("conditions") or [] if c.get("type") == "Progressing"), {}
        )
        stuck = progressing.get("status") == "False" and (
            progressing.get("reason") == "ProgressDeadlineExceeded"
        )
        failure: dict[str, Any] = next(
            (c for c in status.get("conditions") or [] if c.get("type") == "ReplicaFailure"), {}
        )
        refused = str(failure.get("message") or "") if failure.get("status") == "True" else ""
        ready = int(status.get("readyReplicas", 0))
        return cls(replicas, ready, updated, complete, stuck, refused)
