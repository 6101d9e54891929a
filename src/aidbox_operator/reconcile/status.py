"""From what was observed to ClusterStatus (pure; reconcile supplies the observations and the
clock). Conditions follow the Kubernetes API conventions: Ready, Progressing, Degraded."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from aidbox_operator.model import ClusterStatus, Condition, parse_image_version
from aidbox_operator.model.status import DEGRADED, PROGRESSING, READY, Phase, merge_conditions
from aidbox_operator.reconcile.store import FAILING_REASONS, PodSummary


@dataclass(frozen=True)
class Blocker:
    """Why the desired state is not being applied."""

    reason: str
    message: str
    # True: the spec itself is unacceptable (phase Invalid). False: waiting for something
    # outside the spec, such as a missing ConfigMap (phase Degraded).
    invalid: bool
    # False for a deliberate hold (pause): reported in Progressing only.
    degrades: bool = True


def _cond(type_: str, status: bool, reason: str, message: str, generation: int | None) -> Condition:
    return Condition(
        type=type_,
        status="True" if status else "False",
        reason=reason,
        message=message,
        last_transition_time="",
        observed_generation=generation,
    )


def _pod_problems(pods: Iterable[PodSummary]) -> list[PodSummary]:
    return sorted((p for p in pods if p.reason in FAILING_REASONS), key=lambda p: p.name)


def _describe(pods: list[PodSummary], limit: int = 3) -> str:
    text = "; ".join(f"pod {p.name}: {p.reason}" for p in pods[:limit])
    if len(pods) > limit:
        text += f"; and {len(pods) - limit} more"
    return text


def _template_image(deployment: dict[str, Any] | None) -> str:
    if not deployment:
        return ""
    containers = deployment["spec"]["template"]["spec"].get("containers") or [{}]
    return str(containers[0].get("image", ""))


def _rollout_state(deployment: dict[str, Any], desired: int) -> tuple[bool, bool]:
    """(complete, stuck) from the Deployment controller's own report."""
    status = deployment.get("status") or {}
    current = (status.get("observedGeneration") or 0) >= deployment["metadata"].get("generation", 0)
    complete = (
        current
        and status.get("updatedReplicas", 0) >= desired
        and status.get("replicas", 0) == status.get("updatedReplicas", 0)
        and status.get("availableReplicas", 0) >= desired
    )
    progressing: dict[str, Any] = next(
        (c for c in status.get("conditions") or [] if c.get("type") == "Progressing"), {}
    )
    stuck = progressing.get("status") == "False" and (
        progressing.get("reason") == "ProgressDeadlineExceeded"
    )
    return bool(complete), stuck


def compute_status(
    *,
    generation: int | None,
    desired_replicas: int,
    selector: str,
    deployment: dict[str, Any] | None,
    pods: Iterable[PodSummary],
    blocker: Blocker | None,
    missing: list[str],
    previous: ClusterStatus,
    now: str,
    issues: Iterable[tuple[str, str]] = (),
) -> ClusterStatus:
    pods = list(pods)
    dep_status = (deployment or {}).get("status") or {}
    replicas = int(dep_status.get("replicas", 0))
    ready = int(dep_status.get("readyReplicas", 0))
    updated = int(dep_status.get("updatedReplicas", 0))
    g = generation
    phase: Phase
    if blocker is not None and not blocker.degrades:
        serving = deployment is not None and ready >= desired_replicas
        conditions = [
            _cond(
                READY,
                serving,
                "AllReplicasReady" if serving else "ReplicasNotReady",
                f"{ready}/{desired_replicas} pods ready",
                g,
            ),
            _cond(PROGRESSING, False, blocker.reason, blocker.message, g),
            _cond(DEGRADED, False, "AsExpected", "", g),
        ]
        phase = "Ready" if serving else "Degraded"
    elif blocker is not None:
        serving = deployment is not None and ready >= desired_replicas
        conditions = [
            _cond(READY, serving and not blocker.invalid, blocker.reason, blocker.message, g),
            _cond(PROGRESSING, False, blocker.reason, "rollout held: " + blocker.message, g),
            _cond(DEGRADED, True, blocker.reason, blocker.message, g),
        ]
        phase = "Invalid" if blocker.invalid else "Degraded"
    elif deployment is None:
        conditions = [
            _cond(READY, False, "Creating", "the Deployment is being created", g),
            _cond(PROGRESSING, True, "Creating", "the Deployment is being created", g),
            _cond(DEGRADED, False, "AsExpected", "", g),
        ]
        phase = "Pending"
    elif desired_replicas == 0:
        stopped = replicas == 0
        conditions = [
            _cond(READY, stopped, "ScaledToZero", "replicas is 0", g),
            _cond(
                PROGRESSING, not stopped, "ScalingDown" if not stopped else "ScaledToZero", "", g
            ),
            _cond(DEGRADED, False, "AsExpected", "", g),
        ]
        phase = "Stopped" if stopped else "Progressing"
    else:
        complete, stuck = _rollout_state(deployment, desired_replicas)
        problems = _pod_problems(pods)
        all_ready = complete and ready >= desired_replicas
        ready_text = f"{ready}/{desired_replicas} pods ready"
        if all_ready:
            ready_cond = _cond(READY, True, "AllReplicasReady", ready_text, g)
        else:
            ready_cond = _cond(
                READY, False, "ReplicasNotReady" if complete else "RollingOut", ready_text, g
            )
        rollout_text = f"{updated}/{desired_replicas} pods updated, {ready_text}"
        not_ready_new = [p for p in pods if not p.ready and not p.terminating]
        if stuck:
            detail = _describe(problems or not_ready_new) or "new pods do not become ready"
            progressing = _cond(
                PROGRESSING,
                False,
                "ProgressDeadlineExceeded",
                f"rollout stuck ({rollout_text}): {detail}; old pods keep serving",
                g,
            )
        elif not complete:
            progressing = _cond(PROGRESSING, True, "RollingOut", rollout_text, g)
        else:
            progressing = _cond(PROGRESSING, False, "RolloutComplete", rollout_text, g)
        ready_nodes = {p.node for p in pods if p.ready and not p.terminating}
        if stuck:
            degraded = _cond(DEGRADED, True, "RolloutStuck", progressing.message, g)
        elif problems:
            degraded = _cond(DEGRADED, True, problems[0].reason, _describe(problems), g)
        elif complete and ready < desired_replicas:
            degraded = _cond(DEGRADED, True, "ReplicasNotReady", ready_text, g)
        elif complete and desired_replicas >= 2 and ready >= 2 and len(ready_nodes) == 1:
            degraded = _cond(
                DEGRADED,
                True,
                "SingleNode",
                f"all {ready} ready pods run on node {next(iter(ready_nodes))}: "
                "one node failure stops the cluster",
                g,
            )
        elif extra := list(issues):
            degraded = _cond(DEGRADED, True, extra[0][0], "; ".join(m for _, m in extra), g)
        else:
            degraded = _cond(DEGRADED, False, "AsExpected", "", g)
        conditions = [ready_cond, progressing, degraded]
        if degraded.status == "True":
            phase = "Degraded"
        elif ready_cond.status == "True":
            phase = "Ready"
        else:
            phase = "Progressing"
    image = _template_image(deployment)
    return ClusterStatus(
        observed_generation=generation,
        phase=phase,
        replicas=replicas,
        ready_replicas=ready,
        updated_replicas=updated,
        ready=f"{ready}/{desired_replicas}",
        selector=selector,
        image=image,
        version=parse_image_version(image).display if image else "",
        missing_references=missing,
        conditions=merge_conditions(previous.conditions, conditions, now),
    )
