"""kstatus and Argo CD verdicts for hand-written AidboxClusters that follow the status contract.

The contract (docs/status.md): status.observedGeneration is the newest generation the operator
has finished with, fully applied or finally refused (Stalled=True then says why); a held change
(paused, missing reference, transient error) or one still being applied does not advance it.
Reconciling=True while a change rolls out or is held, Stalled=True when it cannot succeed
without a new spec, Ready=True only when every replica runs the current spec.

Argo CD's verdict is taken from Argo CD's own Lua VM (tools/argocd-health, all rows in one
process) and required to equal lupa's (Lua 5.1), which the integration tests poll with.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from aidbox_operator.model import ClusterStatus
from aidbox_operator.status import Observation, PodSummary, compute_status
from health_verdicts import (
    EXPECTED,
    LUA_SCRIPT,
    PAUSE_ANNOTATION,
    README,
    REPO,
    SCENARIOS,
    ArgoHealth,
    argocd,
    argocd_failure,
    as_json,
    crd_status_schema,
    kstatus,
    kstatus_details,
    readme_verdict_table,
    verdict_table,
    with_schema_defaults,
)

STAMP = "2026-01-01T00:00:00Z"


@dataclass
class ClusterBuilder:
    """An AidboxCluster as the API server would return it, status written per the contract."""

    generation: int = 3
    observed: int | None = 3
    paused: bool = False
    conditions: dict[str, tuple[str, str, str]] = field(default_factory=dict)
    # The generation the conditions were computed for: older than `generation` when the
    # operator has not yet finished with the newest spec.
    conditions_generation: int | None = None

    def condition(self, type_: str, status: str, reason: str, message: str = "") -> ClusterBuilder:
        self.conditions[type_] = (status, reason, message)
        return self

    def build(self) -> dict[str, Any]:
        metadata: dict[str, Any] = {
            "name": "fhir",
            "namespace": "health",
            "uid": "00000000-0000-0000-0000-000000000001",
            "generation": self.generation,
            "creationTimestamp": STAMP,
        }
        if self.paused:
            metadata["annotations"] = {PAUSE_ANNOTATION: "true"}
        obj: dict[str, Any] = {
            "apiVersion": "aidbox.io/v1alpha1",
            "kind": "AidboxCluster",
            "metadata": metadata,
            "spec": {"image": "healthsamurai/aidboxone:2510", "replicas": 2},
        }
        if self.observed is None:
            # Just created: only what the CRD's schema defaults put there (see new()).
            status = with_schema_defaults(None, crd_status_schema())
            if status is not None:
                obj["status"] = status
            return obj
        seen = self.conditions_generation or self.observed
        obj["status"] = {
            "observedGeneration": self.observed,
            "conditions": [
                {
                    "type": type_,
                    "status": status,
                    "reason": reason,
                    "message": message,
                    "observedGeneration": seen,
                    "lastTransitionTime": STAMP,
                }
                for type_, (status, reason, message) in self.conditions.items()
            ],
        }
        return obj


def _steady(builder: ClusterBuilder) -> ClusterBuilder:
    return (
        builder.condition("Ready", "True", "AllReplicasReady", "2/2 pods ready")
        .condition("Progressing", "False", "RolloutComplete", "2/2 pods updated, 2/2 pods ready")
        .condition("Degraded", "False", "AsExpected")
        .condition("Reconciling", "False", "AsExpected")
        .condition("Stalled", "False", "AsExpected")
    )


def new() -> dict[str, Any]:
    return ClusterBuilder(generation=1, observed=None).build()


def ready() -> dict[str, Any]:
    return _steady(ClusterBuilder()).build()


def kind_not_installed() -> dict[str, Any]:
    message = (
        "spec.httpRoute is set but the cluster has no gateway.networking.k8s.io/v1 HTTPRoute "
        "kind (install the Gateway API CRDs); the Service is in place"
    )
    return (
        ClusterBuilder()
        .condition("Ready", "True", "AllReplicasReady", "2/2 pods ready")
        .condition("Progressing", "False", "RolloutComplete", "2/2 pods updated, 2/2 pods ready")
        .condition("Degraded", "True", "HTTPRouteUnavailable", message)
        .condition("Reconciling", "False", "AsExpected")
        .condition("Stalled", "False", "AsExpected")
        .build()
    )


def rolling_out() -> dict[str, Any]:
    # Every child accepted (observedGeneration advanced); the Deployment is replacing pods.
    return (
        ClusterBuilder()
        .condition("Ready", "False", "RollingOut", "1/2 pods updated, 2/2 pods ready")
        .condition("Progressing", "True", "RollingOut", "1/2 pods updated, 2/2 pods ready")
        .condition("Degraded", "False", "AsExpected")
        .condition("Reconciling", "True", "RollingOut", "1/2 pods updated, 2/2 pods ready")
        .condition("Stalled", "False", "AsExpected")
        .build()
    )


def spec_changed() -> dict[str, Any]:
    # The user has just edited the spec; the status still describes generation 3.
    return _steady(ClusterBuilder(generation=4, observed=3)).build()


def stuck_rollout() -> dict[str, Any]:
    message = "rollout stuck (1/2 pods updated, 2/2 pods ready): pod fhir-x: NotReady"
    return (
        ClusterBuilder()
        .condition("Ready", "False", "RollingOut", "2/2 pods ready, 1 pod not updated")
        .condition("Progressing", "False", "ProgressDeadlineExceeded", message)
        .condition("Degraded", "True", "RolloutStuck", message)
        .condition("Reconciling", "False", "RolloutStuck", message)
        .condition("Stalled", "True", "RolloutStuck", message)
        .build()
    )


def missing_reference() -> dict[str, Any]:
    # Generation 4 points at a ConfigMap that does not exist: held, old pods keep serving.
    message = "ConfigMap/fhir-settings-v2 does not exist; rollout held, old pods keep serving"
    return (
        ClusterBuilder(generation=4, observed=3, conditions_generation=4)
        .condition("Ready", "False", "MissingReference", message)
        .condition("Progressing", "False", "MissingReference", message)
        .condition("Degraded", "True", "MissingReference", message)
        .condition("Reconciling", "True", "MissingReference", message)
        .condition("Stalled", "False", "AsExpected")
        .build()
    )


def paused_pending() -> dict[str, Any]:
    message = f"{PAUSE_ANNOTATION}=true holds generation 4; 2/2 pods ready on generation 3"
    return (
        ClusterBuilder(generation=4, observed=3, paused=True, conditions_generation=4)
        .condition("Ready", "False", "Paused", message)
        .condition("Progressing", "False", "Paused", message)
        .condition("Degraded", "False", "AsExpected")
        .condition("Reconciling", "True", "Paused", message)
        .condition("Stalled", "False", "AsExpected")
        .build()
    )


def refused_child() -> dict[str, Any]:
    # Finally refused: observedGeneration advanced, nothing of generation 3 applied.
    message = (
        'Deployment fhir: Deployment.apps "fhir" is invalid: spec.template.spec.containers[0]'
        '.resources.requests: Invalid value: "3Gi": must be less than or equal to memory limit'
    )
    return (
        ClusterBuilder()
        .condition("Ready", "False", "ApplyFailed", message)
        .condition("Progressing", "False", "ApplyFailed", message)
        .condition("Degraded", "True", "ApplyFailed", message)
        .condition("Reconciling", "False", "ApplyFailed", message)
        .condition("Stalled", "True", "ApplyFailed", message)
        .build()
    )


def unsupported_version() -> dict[str, Any]:
    message = "healthsamurai/aidboxone:2206 is older than 2208, the first release for replicas > 1"
    return (
        ClusterBuilder()
        .condition("Ready", "False", "UnsupportedVersion", message)
        .condition("Progressing", "False", "UnsupportedVersion", message)
        .condition("Degraded", "True", "UnsupportedVersion", message)
        .condition("Reconciling", "False", "UnsupportedVersion", message)
        .condition("Stalled", "True", "UnsupportedVersion", message)
        .build()
    )


def upgrade_in_progress() -> dict[str, Any]:
    # A new release rolls: status.upgrade says from/to; the first new pod is starting.
    message = "1/2 pods updated, 2/2 pods ready"
    obj = (
        ClusterBuilder()
        .condition("Ready", "False", "RollingOut", message)
        .condition("Progressing", "True", "RollingOut", message)
        .condition("Degraded", "False", "AsExpected")
        .condition("Reconciling", "True", "RollingOut", message)
        .condition("Stalled", "False", "AsExpected")
        .build()
    )
    obj["status"]["upgrade"] = {"from": "2510.1", "to": "2510.2", "strategy": "Rolling"}
    return obj


def pods_refused() -> dict[str, Any]:
    message = (
        "0/2 pods updated, 2/2 pods ready; the API server refuses new pods: pods "
        '"fhir-5d8f-abcde" is forbidden: exceeded quota: pods-limit, requested: pods=1, '
        "used: pods=2, limited: pods=2"
    )
    return (
        ClusterBuilder()
        .condition("Ready", "False", "PodsRefused", message.removeprefix("0/2 pods updated, "))
        .condition("Progressing", "True", "PodsRefused", message)
        .condition("Degraded", "False", "AsExpected")
        .condition("Reconciling", "True", "PodsRefused", message)
        .condition("Stalled", "False", "AsExpected")
        .build()
    )


def upgrade_failed() -> dict[str, Any]:
    message = (
        "upgrade from 2510.1 to 2510.2 failed: pod fhir-x: migration failed; 2 pod(s) of 2510.1 "
        "keep serving. Fix forward, or return to 2510.1"
    )
    return (
        ClusterBuilder()
        .condition("Ready", "False", "UpgradeFailed", message)
        .condition("Progressing", "False", "UpgradeFailed", message)
        .condition("Degraded", "True", "UpgradeFailed", message)
        .condition("Reconciling", "False", "UpgradeFailed", "")
        .condition("Stalled", "True", "UpgradeFailed", message)
        .build()
    )


def refused_downgrade() -> dict[str, Any]:
    # Refused, but not for good: the override annotation (no new generation) can lift it, so
    # observedGeneration stays; the conditions are computed for the newest generation.
    message = "spec.image runs Aidbox 2409.2, older than 2510.2 (set aidbox.io/allow-downgrade-to)"
    return (
        ClusterBuilder(generation=4, observed=3, conditions_generation=4)
        .condition("Ready", "False", "DowngradeRefused", message)
        .condition("Progressing", "False", "DowngradeRefused", message)
        .condition("Degraded", "True", "DowngradeRefused", message)
        .condition("Reconciling", "False", "AsExpected")
        .condition("Stalled", "True", "DowngradeRefused", message)
        .build()
    )


def tag_unresolved() -> dict[str, Any]:
    message = "could not resolve healthsamurai/aidboxone:stable: registry did not answer"
    return (
        ClusterBuilder(generation=4, observed=3, conditions_generation=4)
        .condition("Ready", "False", "TagUnresolved", message)
        .condition("Progressing", "False", "TagUnresolved", message)
        .condition("Degraded", "True", "TagUnresolved", message)
        .condition("Reconciling", "True", "TagUnresolved", message)
        .condition("Stalled", "False", "AsExpected")
        .build()
    )


def _waiting(reason: str, message: str) -> dict[str, Any]:
    return (
        ClusterBuilder()
        .condition("Ready", "True", "AllReplicasReady", "2/2 pods ready")
        .condition("Progressing", "True", reason, message)
        .condition("Degraded", "False", "AsExpected")
        .condition("Reconciling", "False", "AsExpected")
        .condition("Stalled", "False", "AsExpected")
        .build()
    )


def rollout_queued() -> dict[str, Any]:
    return _waiting(
        "RolloutQueued",
        "this operator release renders the pods differently; the change waits for one of 5 "
        "rollout slots (clusters take them in namespace/name order, each until Ready); the "
        "pods keep running as they are",
    )


def wave_queued() -> dict[str, Any]:
    return _waiting(
        "WaveQueued",
        "release channel stable moves its clusters to healthsamurai/aidboxone:2510.2 wave by "
        "wave; this cluster keeps running 2510.1 until its wave",
    )


def channel_halted() -> dict[str, Any]:
    return _waiting(
        "ChannelHalted",
        "release channel stable stopped its move to healthsamurai/aidboxone:2510.2 (Halted; "
        "its status says why); this cluster keeps running 2510.1",
    )


def channel_not_handled() -> dict[str, Any]:
    message = (
        "spec.channel names stable, but this operator does not handle release channels (it "
        "watches chosen namespaces; start it with --release-channels=on, one operator per "
        "channel); nothing running is changed"
    )
    return (
        ClusterBuilder(generation=4, observed=3, conditions_generation=4)
        .condition("Ready", "False", "ChannelsNotHandled", f"{message} (2/2 pods ready)")
        .condition("Progressing", "False", "ChannelsNotHandled", f"rollout held: {message}")
        .condition("Degraded", "True", "ChannelsNotHandled", message)
        .condition("Reconciling", "True", "ChannelsNotHandled", message)
        .condition("Stalled", "False", "AsExpected")
        .build()
    )


def _database(reason: str, line: str) -> dict[str, Any]:
    """The conditions the operator computes when both pods stopped because of their database."""
    pods = tuple(
        PodSummary(
            name,
            name,
            "Running",
            False,
            "h",
            "CrashLoopBackOff",
            False,
            last_exit=line,
            database=reason,
        )
        for name in ("aidbox-a", "aidbox-b")
    )
    deployment = {
        "metadata": {"generation": 1},
        "spec": {"template": {"spec": {"containers": [{"image": "aidboxone:2510"}]}}},
        "status": {"replicas": 2, "updatedReplicas": 2, "observedGeneration": 1},
    }
    obs = Observation(
        generation=3, desired_replicas=2, selector="s", deployment=deployment, pods=pods
    )
    builder = ClusterBuilder()
    for c in compute_status(obs, ClusterStatus(), STAMP).conditions:
        builder.condition(c.type, c.status, c.reason, c.message)
    assert builder.conditions["Stalled"][:2] == ("True", reason)
    return builder.build()


def database_unreachable() -> dict[str, Any]:
    return _database(
        "DatabaseUnreachable",
        "org.postgresql.util.PSQLException: Connection to 10.96.0.99:5432 refused. Check that "
        "the hostname and port are correct",
    )


def database_refused() -> dict[str, Any]:
    return _database(
        "DatabaseRefused",
        'org.postgresql.util.PSQLException: FATAL: password authentication failed for user "a"',
    )


BUILDERS = {
    "new": new,
    "ready": ready,
    "rolling out": rolling_out,
    "spec changed": spec_changed,
    "stuck rollout": stuck_rollout,
    "missing reference on a running cluster": missing_reference,
    "paused with a pending change": paused_pending,
    "refused child": refused_child,
    "unsupported version": unsupported_version,
    "upgrade in progress": upgrade_in_progress,
    "upgrade failed": upgrade_failed,
    "new pods refused by a quota": pods_refused,
    "refused downgrade": refused_downgrade,
    "moving tag not resolved": tag_unresolved,
    "operator rollout queued": rollout_queued,
    "waiting for its channel wave": wave_queued,
    "behind a halted channel": channel_halted,
    "on a channel no operator handles": channel_not_handled,
    "route or monitor kind not installed": kind_not_installed,
    "database unreachable": database_unreachable,
    "database refuses the credentials": database_refused,
}

# kstatus reads only observedGeneration and the Reconciling/Stalled/Ready conditions: an object
# with no status at all is "Current" to it. Only a schema default for status.observedGeneration
# (0 for a fresh object) lets it see a new cluster as InProgress; until crds/ has one, "new" is
# a known failure of kstatus (strict: this turns into an error once the CRD is fixed).
_NEW_IS_JUDGED_CURRENT = pytest.mark.xfail(
    with_schema_defaults(None, crd_status_schema()) is None,
    reason="the CRD gives status no default, so kstatus sees a fresh object as Current",
    strict=True,
)


class BothVMs:
    """Argo CD's verdict for one object from its Lua VM, after checking lupa's is the same."""

    def __init__(self) -> None:
        self.lupa = ArgoHealth()

    def __call__(self, obj: dict[str, Any]) -> dict[str, str]:
        vm = argocd([obj])[0]
        assert not argocd_failure(vm), f"{argocd_failure(vm)}\n{as_json(obj)}"
        lupa = self.lupa(obj)
        assert lupa == vm, f"lupa: {lupa}, Argo CD's VM: {vm}\n{as_json(obj)}"
        return vm


@pytest.fixture(scope="module")
def lupa() -> ArgoHealth:
    return ArgoHealth()


@pytest.fixture(scope="module")
def argo() -> BothVMs:
    return BothVMs()


@pytest.fixture(scope="module")
def argocd_by_scenario() -> dict[str, dict[str, str]]:
    objects = [BUILDERS[s]() for s in SCENARIOS]
    return dict(zip(SCENARIOS, argocd(objects), strict=True))


@pytest.fixture(scope="module")
def kstatus_by_scenario() -> dict[str, str]:
    objects = [BUILDERS[s]() for s in SCENARIOS]
    return dict(zip(SCENARIOS, kstatus(objects), strict=True))


def test_every_scenario_has_a_builder() -> None:
    assert list(BUILDERS) == list(SCENARIOS)


@pytest.mark.parametrize(
    "scenario",
    [pytest.param(s, marks=_NEW_IS_JUDGED_CURRENT) if s == "new" else s for s in SCENARIOS],
)
def test_kstatus_verdict(scenario: str, kstatus_by_scenario: dict[str, str]) -> None:
    obj = BUILDERS[scenario]()
    got = kstatus_by_scenario[scenario]
    assert got == EXPECTED[scenario].kstatus, f"{scenario}: {kstatus_details(obj)}\n{as_json(obj)}"


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_argocd_verdict(scenario: str, argocd_by_scenario: dict[str, dict[str, str]]) -> None:
    """The row's verdict in Argo CD's own Lua VM."""
    obj = BUILDERS[scenario]()
    got = argocd_by_scenario[scenario]
    assert not argocd_failure(got), f"{scenario}: {argocd_failure(got)}\n{as_json(obj)}"
    assert got["status"] == EXPECTED[scenario].argocd, f"{scenario}: {got}\n{as_json(obj)}"
    assert got["message"]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_lupa_agrees_with_argocd(
    scenario: str, lupa: ArgoHealth, argocd_by_scenario: dict[str, dict[str, str]]
) -> None:
    """Lua 5.1 (what the integration tests poll with) reaches the same status and message."""
    obj = BUILDERS[scenario]()
    assert lupa(obj) == argocd_by_scenario[scenario], f"{scenario}\n{as_json(obj)}"


def test_argocd_messages_say_why(argo: BothVMs) -> None:
    assert "RolloutStuck" in argo(stuck_rollout())["message"]
    assert "memory limit" in argo(refused_child())["message"]
    assert "MissingReference" in argo(missing_reference())["message"]
    assert "paused" in argo(paused_pending())["message"]


def test_stale_stall_does_not_outlive_a_new_spec(argo: BothVMs) -> None:
    """A fix pushed after a refusal is judged by the new generation, not the old Stalled."""
    fixed = unsupported_version()
    fixed["metadata"]["generation"] = 4
    assert kstatus([fixed]) == ["InProgress"]
    assert argo(fixed)["status"] == "Progressing"


def test_paused_without_pending_change_is_healthy(argo: BothVMs) -> None:
    obj = ready()
    obj["metadata"]["annotations"] = {PAUSE_ANNOTATION: "true"}
    assert argo(obj)["status"] == "Healthy"
    assert kstatus([obj]) == ["Current"]


@pytest.mark.parametrize("value", ["Yes", "1", "on", "TRUE", "maybe"])
def test_any_spelling_of_yes_pauses_for_argocd(argo: BothVMs, value: str) -> None:
    obj = paused_pending()
    obj["metadata"]["annotations"] = {PAUSE_ANNOTATION: value}
    assert argo(obj)["status"] == "Suspended"
    for no in ("no", "False", "0", "OFF"):
        obj["metadata"]["annotations"] = {PAUSE_ANNOTATION: no}
        assert argo(obj)["status"] != "Suspended"


def test_ready_with_a_warning_stays_healthy(argo: BothVMs) -> None:
    obj = ready()
    for cond in obj["status"]["conditions"]:
        if cond["type"] == "Degraded":
            cond.update(status="True", reason="SingleNode", message="all pods on node n1")
    assert argo(obj) == {
        "status": "Healthy",
        "message": "AllReplicasReady: 2/2 pods ready; warning: SingleNode: all pods on node n1",
    }
    assert kstatus([obj]) == ["Current"]


def test_no_status_at_all_is_progressing_for_argocd(argo: BothVMs) -> None:
    obj = ClusterBuilder(generation=1, observed=None).build()
    obj.pop("status", None)
    assert argo(obj)["status"] == "Progressing"


def test_readme_prints_the_asserted_table() -> None:
    assert readme_verdict_table(README.read_text()) == verdict_table(), (
        "README.md's 'Health verdicts' table differs from tests/health_verdicts.py VERDICTS; "
        f"it must be:\n{verdict_table()}"
    )


def test_docs_argocd_snippet_is_the_script() -> None:
    """docs/status.md's argocd-cm snippet embeds deploy/argocd/aidboxcluster-health.lua as is."""
    doc = (REPO / "docs" / "status.md").read_text()
    key = "  resource.customizations.health.aidbox.io_AidboxCluster: |\n"
    assert key in doc
    block = doc.split(key, 1)[1].split("\n```", 1)[0]
    embedded = "\n".join(line.removeprefix("    ") for line in block.split("\n"))
    assert embedded.rstrip("\n") == LUA_SCRIPT.read_text().rstrip("\n")


def test_new_with_a_status_default_is_in_progress_for_both(argo: BothVMs) -> None:
    """What the API server returns for a fresh object once the CRD defaults observedGeneration
    to 0 (verified against kube-apiserver 1.37.2 with a scratch CRD): both tools wait."""
    obj = ClusterBuilder(generation=1, observed=None).build()
    obj["status"] = {"observedGeneration": 0, "phase": "Pending"}
    assert kstatus([obj]) == ["InProgress"]
    assert argo(obj) == {
        "status": "Progressing",
        "message": "waiting for the operator to act on generation 1",
    }
