"""A spec.replicas change that is not applied because another controller chooses the replicas
(spec.autoscaling, manageReplicas false). Admission refuses such a change (CEL transition
rules), but not where the CRD predates those rules (Helm never upgrades a chart's CRDs): then
the change must not go unsaid. Pure."""

from __future__ import annotations

from aidbox_operator.model import ClusterStatus
from aidbox_operator.status.observation import Observation

NOT_APPLIED = "ReplicasNotApplied"


def replicas_record(obs: Observation, previous: ClusterStatus) -> int | None:
    """spec.replicas as it was when the replicas were left to another controller (kept while
    they are; None while the operator sets them)."""
    if obs.spec_replicas is None:
        return previous.replicas_at_hand_over  # not read on this pass (an invalid spec)
    if obs.replicas_left_to is None:
        return None
    if previous.replicas_at_hand_over is not None:
        return previous.replicas_at_hand_over
    return obs.spec_replicas


def replicas_problem(obs: Observation, recorded: int | None) -> tuple[str, str] | None:
    """Degraded while spec.replicas differs from the count it had when it was handed over; the
    message names the value, so each new value gets its one Warning Event."""
    if recorded is None or obs.spec_replicas in (None, recorded):
        return None
    return (
        NOT_APPLIED,
        f"spec.replicas {obs.spec_replicas} is not applied: {obs.replicas_left_to} chooses "
        f"the Deployment's replicas (spec.replicas was {recorded} when they were left to it); "
        "set spec.replicas back, or hand the replicas back to the operator (drop "
        "autoscaling, manageReplicas true)",
    )
