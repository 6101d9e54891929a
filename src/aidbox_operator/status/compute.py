"""From an Observation to ClusterStatus (pure; reconcile supplies the observation and the clock).

Conditions follow the Kubernetes API conventions (Ready, Progressing, Degraded) and the kstatus
conventions GitOps tools read (Reconciling, Stalled). `observedGeneration` names the newest
generation the operator has finished with: fully applied, or finally refused (Stalled says why).
A held or paused change leaves it where it was, so no tool reads a held change as done.
"""

from __future__ import annotations

from collections.abc import Iterable

from aidbox_operator.model import ClusterStatus, Condition, parse_image_version
from aidbox_operator.model.status import (
    DEGRADED,
    PROGRESSING,
    READY,
    RECONCILING,
    STALLED,
    Phase,
    merge_conditions,
)
from aidbox_operator.status.observation import Observation, Rollout
from aidbox_operator.status.pods import FAILING_REASONS, PodSummary

Conditions = dict[str, tuple[bool, str, str]]  # type -> (status, reason, message)


def _describe(pods: list[PodSummary], limit: int = 3) -> str:
    text = "; ".join(f"pod {p.name}: {p.reason}" for p in pods[:limit])
    if len(pods) > limit:
        text += f"; and {len(pods) - limit} more"
    return text


def _quiet() -> Conditions:
    return {
        DEGRADED: (False, "AsExpected", ""),
        RECONCILING: (False, "AsExpected", ""),
        STALLED: (False, "AsExpected", ""),
    }


def _blocked(obs: Observation, rollout: Rollout) -> tuple[Conditions, Phase]:
    blocker = obs.blocker
    assert blocker is not None
    ready_text = f"{rollout.ready}/{obs.desired_replicas} pods ready"
    held = f"{blocker.message} ({ready_text} on the previous spec)"
    conds = _quiet()
    conds[READY] = (False, blocker.reason, held)
    conds[PROGRESSING] = (False, blocker.reason, "rollout held: " + blocker.message)
    if blocker.kind == "refused":
        conds[DEGRADED] = (True, blocker.reason, blocker.message)
        conds[STALLED] = (True, blocker.reason, blocker.message)
        return conds, "Invalid" if blocker.invalid else "Degraded"
    conds[RECONCILING] = (True, blocker.reason, blocker.message)
    if blocker.kind == "held":
        conds[DEGRADED] = (True, blocker.reason, blocker.message)
        return conds, "Degraded"
    return conds, "Paused"


def _degraded(obs: Observation, rollout: Rollout, stuck_text: str) -> tuple[bool, str, str]:
    problems = sorted((p for p in obs.pods if p.reason in FAILING_REASONS), key=lambda p: p.name)
    desired = obs.desired_replicas
    ready_nodes = {p.node for p in obs.pods if p.ready and not p.terminating}
    if rollout.stuck:
        return True, "RolloutStuck", stuck_text
    if problems:
        return True, problems[0].reason, _describe(problems)
    if rollout.complete and rollout.ready < desired:
        return True, "ReplicasNotReady", f"{rollout.ready}/{desired} pods ready"
    if rollout.complete and desired >= 2 and rollout.ready >= 2 and len(ready_nodes) == 1:
        return (
            True,
            "SingleNode",
            f"all {rollout.ready} ready pods run on node {next(iter(ready_nodes))}: "
            "one node failure stops the cluster",
        )
    if obs.problems:
        return True, obs.problems[0][0], "; ".join(m for _, m in obs.problems)
    return False, "AsExpected", ""


def _running(obs: Observation, rollout: Rollout) -> tuple[Conditions, Phase]:
    desired = obs.desired_replicas
    ready_text = f"{rollout.ready}/{desired} pods ready"
    rollout_text = f"{rollout.updated}/{desired} pods updated, {ready_text}"
    conds = _quiet()
    if rollout.complete and rollout.ready >= desired:
        conds[READY] = (True, "AllReplicasReady", ready_text)
    else:
        conds[READY] = (False, "ReplicasNotReady" if rollout.complete else "RollingOut", ready_text)
    stuck_text = ""
    if rollout.stuck:
        not_ready = [p for p in obs.pods if not p.ready and not p.terminating]
        failing = [p for p in not_ready if p.reason in FAILING_REASONS] or not_ready
        detail = _describe(failing) or "new pods do not become ready"
        stuck_text = f"rollout stuck ({rollout_text}): {detail}; old pods keep serving"
        conds[PROGRESSING] = (False, "ProgressDeadlineExceeded", stuck_text)
        conds[STALLED] = (True, "RolloutStuck", stuck_text)
    elif not rollout.complete:
        conds[PROGRESSING] = (True, "RollingOut", rollout_text)
        conds[RECONCILING] = (True, "RollingOut", rollout_text)
    else:
        conds[PROGRESSING] = (False, "RolloutComplete", rollout_text)
    conds[DEGRADED] = _degraded(obs, rollout, stuck_text)
    if conds[DEGRADED][0]:
        return conds, "Degraded"
    return conds, "Ready" if conds[READY][0] else "Progressing"


def _conditions(obs: Observation, rollout: Rollout) -> tuple[Conditions, Phase]:
    blocker = obs.blocker
    if blocker is not None and (blocker.kind != "paused" or obs.pending):
        return _blocked(obs, rollout)
    if obs.deployment is None:
        conds = _quiet()
        text = "the Deployment is being created"
        conds[READY] = (False, "Creating", text)
        conds[PROGRESSING] = (True, "Creating", text)
        conds[RECONCILING] = (True, "Creating", text)
        return conds, "Pending"
    if obs.desired_replicas == 0:
        stopped = rollout.replicas == 0
        conds = _quiet()
        conds[READY] = (stopped, "ScaledToZero", "replicas is 0")
        conds[PROGRESSING] = (not stopped, "ScaledToZero" if stopped else "ScalingDown", "")
        conds[RECONCILING] = (not stopped, "ScaledToZero" if stopped else "ScalingDown", "")
        return conds, "Stopped" if stopped else "Progressing"
    conds, phase = _running(obs, rollout)
    if blocker is not None:  # paused with nothing pending: report the pods, say it is paused
        conds[PROGRESSING] = (False, blocker.reason, blocker.message)
    return conds, phase


def observed_generation(obs: Observation, previous: ClusterStatus) -> int | None:
    blocker = obs.blocker
    if blocker is not None and blocker.kind != "refused" and obs.pending:
        return previous.observed_generation
    return obs.generation


def compute_status(obs: Observation, previous: ClusterStatus, now: str) -> ClusterStatus:
    rollout = Rollout.of(obs.deployment, obs.desired_replicas)
    conds, phase = _conditions(obs, rollout)
    g = obs.generation
    computed = [
        Condition(
            type=type_,
            status="True" if state else "False",
            reason=reason,
            message=message,
            last_transition_time="",
            observed_generation=g,
        )
        for type_, (state, reason, message) in _ordered(conds)
    ]
    image = _template_image(obs.deployment)
    return ClusterStatus(
        observed_generation=observed_generation(obs, previous),
        phase=phase,
        replicas=rollout.replicas,
        ready_replicas=rollout.ready,
        updated_replicas=rollout.updated,
        ready=f"{rollout.ready}/{obs.desired_replicas}",
        selector=obs.selector,
        image=image,
        version=parse_image_version(image).display if image else "",
        missing_references=list(obs.missing),
        running_versions=dict(obs.versions),
        conditions=merge_conditions(previous.conditions, computed, now),
    )


def _ordered(conds: Conditions) -> Iterable[tuple[str, tuple[bool, str, str]]]:
    for type_ in (READY, PROGRESSING, DEGRADED, RECONCILING, STALLED):
        yield type_, conds[type_]


def _template_image(deployment: object) -> str:
    if not isinstance(deployment, dict):
        return ""
    containers = deployment["spec"]["template"]["spec"].get("containers") or [{}]
    return str(containers[0].get("image", ""))
