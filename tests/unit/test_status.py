from __future__ import annotations

from typing import Any

from aidbox_operator.model import ClusterStatus
from aidbox_operator.status import Blocker, Observation, PodSummary, compute_status, summarize_pod


def _deployment(
    replicas: int,
    ready: int,
    updated: int,
    available: int,
    *,
    gen: int = 1,
    observed: int = 1,
    stuck: bool = False,
) -> dict[str, Any]:
    conditions = []
    if stuck:
        conditions.append(
            {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}
        )
    return {
        "metadata": {"generation": gen},
        "spec": {"template": {"spec": {"containers": [{"image": "healthsamurai/aidboxone:2510"}]}}},
        "status": {
            "replicas": replicas,
            "readyReplicas": ready,
            "updatedReplicas": updated,
            "availableReplicas": available,
            "observedGeneration": observed,
            "conditions": conditions,
        },
    }


def _pod(name: str, node: str, ready: bool = True, reason: str = "") -> PodSummary:
    return PodSummary(
        name=name,
        node=node,
        phase="Running",
        ready=ready,
        template_hash="h",
        reason=reason,
        terminating=False,
    )


def _status(
    previous: ClusterStatus | None = None, now: str = "2026-01-01T00:00:00Z", **kwargs: Any
) -> ClusterStatus:
    defaults: dict[str, Any] = dict(
        generation=3, desired_replicas=2, selector="s", deployment=None, pods=()
    )
    obs = Observation(**{**defaults, **kwargs})
    return compute_status(obs, previous or ClusterStatus(), now)


def _conds(status: ClusterStatus) -> dict[str, tuple[str, str]]:
    return {c.type: (c.status, c.reason) for c in status.conditions}


def test_ready_when_rollout_complete() -> None:
    status = _status(deployment=_deployment(2, 2, 2, 2), pods=(_pod("a", "n1"), _pod("b", "n2")))
    assert status.phase == "Ready" and status.ready == "2/2" and status.observed_generation == 3
    assert _conds(status) == {
        "Ready": ("True", "AllReplicasReady"),
        "Progressing": ("False", "RolloutComplete"),
        "Degraded": ("False", "AsExpected"),
        "Reconciling": ("False", "AsExpected"),
        "Stalled": ("False", "AsExpected"),
    }
    assert status.version == "2510"


def test_rolling_out() -> None:
    status = _status(deployment=_deployment(3, 2, 1, 2))
    assert status.phase == "Progressing"
    assert _conds(status)["Progressing"] == ("True", "RollingOut")
    assert _conds(status)["Reconciling"] == ("True", "RollingOut")
    assert _conds(status)["Ready"][0] == "False"


def test_stuck_rollout_names_the_pods() -> None:
    status = _status(
        deployment=_deployment(3, 2, 1, 2, stuck=True),
        pods=(_pod("new", "n1", ready=False, reason="NotReady"), _pod("old", "n2")),
    )
    assert _conds(status)["Progressing"] == ("False", "ProgressDeadlineExceeded")
    assert _conds(status)["Stalled"] == ("True", "RolloutStuck")
    assert _conds(status)["Reconciling"][0] == "False"
    degraded = status.condition("Degraded")
    assert (
        degraded is not None and degraded.reason == "RolloutStuck" and "pod new" in degraded.message
    )


def test_crashing_pod_degrades() -> None:
    status = _status(
        deployment=_deployment(2, 1, 2, 1),
        pods=(_pod("a", "n1"), _pod("b", "n2", ready=False, reason="CrashLoopBackOff")),
    )
    assert status.phase == "Degraded"
    assert _conds(status)["Degraded"] == ("True", "CrashLoopBackOff")


def test_all_ready_pods_on_one_node_is_reported() -> None:
    status = _status(deployment=_deployment(2, 2, 2, 2), pods=(_pod("a", "n1"), _pod("b", "n1")))
    assert _conds(status)["Degraded"] == ("True", "SingleNode")


def test_refusal_stalls_and_finishes_the_generation() -> None:
    previous = ClusterStatus(observed_generation=2)
    invalid = _status(
        previous,
        deployment=_deployment(2, 2, 2, 2),
        blocker=Blocker("UnsupportedVersion", "too old", "refused"),
    )
    assert invalid.phase == "Invalid"
    assert _conds(invalid)["Ready"] == ("False", "UnsupportedVersion")
    assert _conds(invalid)["Stalled"] == ("True", "UnsupportedVersion")
    assert _conds(invalid)["Reconciling"][0] == "False"
    # kstatus reads Stalled only when observedGeneration matches: the verdict is final.
    assert invalid.observed_generation == 3
    conflict = _status(previous, blocker=Blocker("ResourceConflict", "in the way", "refused"))
    assert conflict.phase == "Degraded" and _conds(conflict)["Stalled"][0] == "True"


def test_held_change_keeps_the_old_generation() -> None:
    previous = ClusterStatus(observed_generation=2)
    held = _status(
        previous,
        deployment=_deployment(2, 2, 2, 2),
        blocker=Blocker("MissingReference", "ConfigMap/x not found", "held"),
        missing=("ConfigMap/x",),
        pending=True,
    )
    assert held.phase == "Degraded" and held.missing_references == ["ConfigMap/x"]
    assert held.observed_generation == 2
    assert _conds(held)["Ready"] == ("False", "MissingReference")
    assert _conds(held)["Reconciling"] == ("True", "MissingReference")
    assert _conds(held)["Stalled"][0] == "False"


def test_paused_with_a_pending_change_is_not_ready() -> None:
    previous = ClusterStatus(observed_generation=2)
    paused = Blocker("Paused", "paused", "paused")
    pending = _status(previous, deployment=_deployment(2, 2, 2, 2), blocker=paused, pending=True)
    assert pending.phase == "Paused" and pending.observed_generation == 2
    assert _conds(pending)["Ready"] == ("False", "Paused")
    assert _conds(pending)["Reconciling"] == ("True", "Paused")
    assert _conds(pending)["Degraded"][0] == "False"
    idle = _status(
        previous,
        deployment=_deployment(2, 2, 2, 2),
        pods=(_pod("a", "n1"), _pod("b", "n2")),
        blocker=paused,
    )
    assert idle.phase == "Ready" and idle.observed_generation == 3
    assert _conds(idle)["Progressing"] == ("False", "Paused")


def test_scaled_to_zero() -> None:
    status = _status(desired_replicas=0, deployment=_deployment(0, 0, 0, 0))
    assert status.phase == "Stopped" and _conds(status)["Ready"] == ("True", "ScaledToZero")


def test_same_observation_same_status() -> None:
    first = _status(deployment=_deployment(2, 2, 2, 2))
    again = _status(deployment=_deployment(2, 2, 2, 2), previous=first, now="2026-02-02T00:00:00Z")
    assert again.to_api() == first.to_api()


def test_pod_summary_reasons() -> None:
    crash = {
        "metadata": {"name": "p"},
        "spec": {"nodeName": "n"},
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "False"}],
            "containerStatuses": [{"state": {"waiting": {"reason": "CrashLoopBackOff"}}}],
        },
    }
    assert summarize_pod(crash).reason == "CrashLoopBackOff"
    oom = {
        "metadata": {"name": "p"},
        "status": {
            "phase": "Running",
            "containerStatuses": [
                {"state": {"running": {}}, "lastState": {"terminated": {"reason": "OOMKilled"}}}
            ],
        },
    }
    assert summarize_pod(oom).reason == "OOMKilled"
    pending = {
        "metadata": {"name": "p"},
        "status": {
            "phase": "Pending",
            "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}],
        },
    }
    assert summarize_pod(pending).reason == "Unschedulable"
