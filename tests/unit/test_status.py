from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from aidbox_operator.model import AidboxCluster, ClusterStatus
from aidbox_operator.model.constants import PAUSED_ANNOTATION
from aidbox_operator.status import (
    Blocker,
    Observation,
    PodSummary,
    compute_status,
    pause_blocker,
    summarize_pod,
)


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


def test_no_single_node_warning_for_a_view_between_two_watch_events() -> None:
    """A pod replacement on real nodes once posted SingleNode 37 ms before Recovered: the count
    came from the Deployment while the node set skipped the terminating pod. A view with a pod
    terminating, or fewer live pods than the Deployment reports ready, is not judged."""
    replaced = _pod("c", "n2")
    replaced = replace(replaced, terminating=True)
    between = _status(
        deployment=_deployment(3, 3, 3, 3),
        desired_replicas=3,
        pods=(_pod("a", "n1"), _pod("b", "n1"), replaced),
    )
    assert _conds(between)["Degraded"] == ("False", "AsExpected")
    lagging = _status(
        deployment=_deployment(3, 3, 3, 3),
        desired_replicas=3,
        pods=(_pod("a", "n1"), _pod("b", "n1"), _pod("d", "n1", ready=False)),
    )
    assert _conds(lagging)["Degraded"][1] != "SingleNode"
    settled = _status(
        deployment=_deployment(3, 3, 3, 3),
        desired_replicas=3,
        pods=(_pod("a", "n1"), _pod("b", "n1"), _pod("d", "n1")),
    )
    assert _conds(settled)["Degraded"] == ("True", "SingleNode")


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


def test_version_record_is_kept_and_absent_until_written() -> None:
    assert "versionRecord" not in _status().to_api()
    previous = ClusterStatus.model_validate({"versionRecord": {"newestReady": "2510.2"}})
    kept = _status(previous, deployment=_deployment(2, 2, 2, 2))
    assert kept.to_api()["versionRecord"]["newestReady"] == "2510.2"


def test_a_terminating_pods_failure_is_over() -> None:
    """After going back from a failed release, its pod terminating with Error is no problem."""
    leaving = replace(_pod("x", "n3", ready=False, reason="Error"), terminating=True)
    status = _status(
        deployment=_deployment(2, 2, 2, 2), pods=(_pod("a", "n1"), _pod("b", "n2"), leaving)
    )
    assert _conds(status)["Degraded"] == ("False", "AsExpected")


def test_a_deployment_that_went_away_is_no_upgrade() -> None:
    from aidbox_operator.status import transition_events

    before = ClusterStatus(image="healthsamurai/aidboxone:2510.2", version="2510.2")
    after = ClusterStatus(image="", version="")
    assert not [e for e in transition_events(before, after) if e[1].startswith("Upgrade")]


def _pod_status(**status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "p"},
        "spec": {
            "containers": [
                {"name": "main", "image": "healthsamurai/aidboxone:2510"},
                {"name": "agent"},
            ]
        },
        "status": {"phase": "Running", **status},
    }


def test_the_aidbox_containers_status_is_found_by_name_beside_sidecars() -> None:
    # The kubelet sorts statuses by name: "agent" comes before "main".
    pod = _pod_status(
        containerStatuses=[
            {"name": "agent", "restartCount": 0, "state": {"running": {}}},
            {
                "name": "main",
                "restartCount": 3,
                "state": {"running": {}},
                "lastState": {"terminated": {"reason": "Error", "exitCode": 1}},
            },
        ]
    )
    summary = summarize_pod(pod)
    assert summary.restarts == 3 and summary.last_exit == "Error (exit code 1)"


def test_a_failing_init_container_is_the_pods_reason() -> None:
    failing = _pod_status(
        phase="Pending",
        initContainerStatuses=[
            {"name": "wait", "state": {"waiting": {"reason": "CrashLoopBackOff"}}}
        ],
        containerStatuses=[{"name": "main", "state": {"waiting": {"reason": "PodInitializing"}}}],
    )
    assert summarize_pod(failing).reason == "CrashLoopBackOff"
    done = _pod_status(
        initContainerStatuses=[
            {"name": "wait", "state": {"terminated": {"reason": "Completed", "exitCode": 0}}}
        ],
        containerStatuses=[{"name": "main", "state": {"running": {}}}],
        conditions=[{"type": "Ready", "status": "True"}],
    )
    assert summarize_pod(done).reason == ""


@pytest.mark.parametrize(
    ("value", "paused", "said"),
    [
        ("true", True, False),
        ("Yes", True, False),
        ("1", True, False),
        ("ON", True, False),
        (" true ", True, True),
        ("false", False, False),
        ("No", False, False),
        ("0", False, False),
        ("", False, False),
        ("maybe", True, True),
    ],
)
def test_the_pause_annotation_reads_any_spelling_and_says_when_it_guessed(
    value: str, paused: bool, said: bool
) -> None:
    """Found by a hostile-input run: "yes", "True" and "1" were ignored without a word."""
    cluster = AidboxCluster.model_validate(
        {"metadata": {"name": "a", "annotations": {PAUSED_ANNOTATION: value}}, "spec": {}}
    )
    blocker = pause_blocker(cluster)
    assert (blocker is not None) == paused
    assert (blocker is not None and "neither true nor false" in blocker.message) == said
