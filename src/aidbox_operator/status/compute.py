"""From an Observation to ClusterStatus (pure; reconcile supplies the observation and the clock).

Conditions follow the Kubernetes API conventions (Ready, Progressing, Degraded) and the kstatus
conventions GitOps tools read (Reconciling, Stalled). `observedGeneration` names the newest
generation the operator has finished with: fully applied, or finally refused (Stalled says why).
A held or paused change leaves it where it was, so no tool reads a held change as done.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from aidbox_operator.model import ClusterStatus
from aidbox_operator.model.constants import RESTARTED_AT_ANNOTATION
from aidbox_operator.model.status import (
    DEGRADED,
    PROGRESSING,
    READY,
    RECONCILING,
    STALLED,
    Phase,
    merge_conditions,
    new_conditions,
)
from aidbox_operator.status.database import explain
from aidbox_operator.status.observation import Observation, Rollout
from aidbox_operator.status.pods import FAILING_REASONS, PodSummary
from aidbox_operator.status.replicas import replicas_problem, replicas_record
from aidbox_operator.status.upgrade import (
    compute_upgrade,
    pod_annotation,
    record_version,
    release_name,
    template_image,
    upgrade_failure,
)

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


def _single_node(obs: Observation, rollout: Rollout) -> str:
    """The node every ready pod runs on, judged only on a settled view: each desired pod live
    and ready, none terminating, and the pods agreeing with the Deployment's own count. Between
    a pod's replacement and the next watch event the view is not settled, and a Warning then
    would describe a state that never lasted."""
    if any(p.terminating for p in obs.pods) or not all(p.ready for p in obs.pods):
        return ""
    nodes = {p.node for p in obs.pods}
    count = len(obs.pods)
    settled = count == obs.desired_replicas == rollout.ready and rollout.complete
    return next(iter(nodes)) if settled and count >= 2 and len(nodes) == 1 else ""


def _degraded(obs: Observation, rollout: Rollout, stuck_text: str) -> tuple[bool, str, str]:
    # A terminating pod's last state (an old release's exit, a failed one going away) is over.
    problems = sorted(
        (p for p in obs.pods if p.reason in FAILING_REASONS and not p.terminating),
        key=lambda p: p.name,
    )
    desired = obs.desired_replicas
    if rollout.stuck:
        return True, "RolloutStuck", stuck_text
    if problems:
        return True, problems[0].reason, _describe(problems)
    if rollout.complete and rollout.ready < desired:
        return True, "ReplicasNotReady", f"{rollout.ready}/{desired} pods ready"
    if node := _single_node(obs, rollout):
        return (
            True,
            "SingleNode",
            f"all {rollout.ready} ready pods run on node {node}: "
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
        detail = _describe(failing) or _refused(rollout) or "new pods do not become ready"
        stuck_text = f"rollout stuck ({rollout_text}): {detail}; old pods keep serving"
        conds[PROGRESSING] = (False, "ProgressDeadlineExceeded", stuck_text)
        conds[STALLED] = (True, "RolloutStuck", stuck_text)
    elif not rollout.complete and rollout.refused:
        # Not final: quota may be freed by others; the Deployment's progress deadline is.
        text = f"{rollout_text}; {_refused(rollout)}"
        conds[READY] = (False, "PodsRefused", f"{ready_text}; {_refused(rollout)}")
        conds[PROGRESSING] = (True, "PodsRefused", text)
        conds[RECONCILING] = (True, "PodsRefused", text)
    elif not rollout.complete:
        conds[PROGRESSING] = (True, "RollingOut", rollout_text)
        conds[RECONCILING] = (True, "RollingOut", rollout_text)
    else:
        conds[PROGRESSING] = (False, "RolloutComplete", rollout_text)
    conds[DEGRADED] = _degraded(obs, rollout, stuck_text)
    _database_conditions(conds, obs)
    if conds[DEGRADED][0]:
        return conds, "Degraded"
    return conds, "Ready" if conds[READY][0] else "Progressing"


def _database_conditions(conds: Conditions, obs: Observation) -> None:
    """Pods that stopped because of their database say so instead of CrashLoopBackOff. With
    no pod left serving the cluster is down until someone fixes the database or its settings:
    Stalled (kstatus Failed), which GitOps tools show with this message."""
    live = [p for p in obs.pods if not p.terminating]
    failing = sorted((p for p in live if p.database and not p.ready), key=lambda p: p.name)
    if not failing:
        return
    first = failing[0]
    problem = (first.database, explain(first.database, first.name, first.last_exit))
    conds[DEGRADED] = (True, *problem)
    if not any(p.ready for p in live):
        # Nothing progresses until the database answers: kstatus reads Reconciling first.
        for type_ in (READY, PROGRESSING):
            conds[type_] = (False, *problem)
        conds[STALLED] = (True, *problem)
        conds[RECONCILING] = (False, problem[0], "")


def _refused(rollout: Rollout) -> str:
    if not rollout.refused:
        return ""
    return f"the API server refuses new pods: {rollout.refused}"


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
    if obs.queued:
        # Not a failure and nothing the user must do: the pods run the applied spec.
        conds[PROGRESSING] = (True, *obs.queued)
    if blocker is not None:  # paused with nothing pending: report the pods, say it is paused
        conds[PROGRESSING] = (False, blocker.reason, blocker.message)
    return conds, phase


def _upgrade_failed(conds: Conditions, text: str) -> tuple[Conditions, Phase]:
    """A new release that does not start is final for this generation (kstatus: Failed) until
    the user fixes forward or goes back; the Deployment keeps the old pods serving."""
    for type_ in (READY, PROGRESSING, DEGRADED, STALLED):
        conds[type_] = (type_ in (DEGRADED, STALLED), "UpgradeFailed", text)
    conds[RECONCILING] = (False, "UpgradeFailed", "")
    return conds, "Degraded"


def observed_generation(obs: Observation, previous: ClusterStatus) -> int | None:
    blocker = obs.blocker
    settled = blocker is not None and blocker.kind == "refused" and blocker.final
    if blocker is not None and not settled and obs.pending:
        return previous.observed_generation
    return obs.generation


def compute_status(obs: Observation, previous: ClusterStatus, now: str) -> ClusterStatus:
    handed_over = replicas_record(obs, previous)
    if problem := replicas_problem(obs, handed_over):
        obs = replace(obs, problems=(*obs.problems, problem))
    rollout = Rollout.of(obs.deployment, obs.desired_replicas)
    conds, phase = _conditions(obs, rollout)
    image = template_image(obs.deployment)
    record = record_version(previous.version_record, obs, now)
    upgrade = compute_upgrade(previous, obs, rollout, image, now)
    failure = upgrade and upgrade_failure(upgrade, obs, rollout, record)
    if failure and (obs.blocker is None or not obs.pending):
        conds, phase = _upgrade_failed(conds, failure)
    computed = new_conditions(_ordered(conds), obs.generation)
    return ClusterStatus(
        observed_generation=observed_generation(obs, previous),
        phase=phase,
        replicas=rollout.replicas,
        ready_replicas=rollout.ready,
        updated_replicas=rollout.updated,
        ready=f"{rollout.ready}/{obs.desired_replicas}",
        selector=obs.selector,
        image=image,
        version=release_name(image, obs.pinned),
        missing_references=list(obs.missing),
        running_versions=dict(obs.versions),
        version_record=record,
        template_generation=(
            obs.template_generation
            if obs.template_generation is not None
            else previous.template_generation
        ),
        pinned_image=obs.pinned,
        replicas_at_hand_over=handed_over,
        upgrade=upgrade,
        restarted_at=pod_annotation(obs.deployment, RESTARTED_AT_ANNOTATION),
        url=(obs.url if obs.url is not None else previous.url) or None,
        conditions=merge_conditions(previous.conditions, computed, now),
    )


def _ordered(conds: Conditions) -> Iterable[tuple[str, tuple[bool, str, str]]]:
    for type_ in (READY, PROGRESSING, DEGRADED, RECONCILING, STALLED):
        yield type_, conds[type_]
