"""Release changes on the in-memory API: the version record, the downgrade guard and its
override, pinned moving tags, upgrade status and Events, a failed upgrade held and explained,
and the Recreate strategy."""

from __future__ import annotations

from typing import Any

import pytest
from fakeapi import Harness

from aidbox_operator.model.constants import ALLOW_DOWNGRADE_ANNOTATION
from aidbox_operator.reconcile import cluster as cluster_pass
from aidbox_operator.runtime.registry import Resolved, ResolveError

REPO = "healthsamurai/aidboxone"
DIGEST_A = "sha256:" + "a" * 64
DIGEST_B = "sha256:" + "b" * 64
MIGRATION_FAILED = 'migration 2510.3 failed: relation "patient" does not exist'


def _cluster(h: Harness, tag: str, **spec: Any) -> None:
    h.config("ConfigMap", "aidbox", {"BOX_ID": "a"})
    h.config("Secret", "aidbox", {"BOX_LICENSE": "bGlj"})
    h.cluster(**{"image": f"{REPO}:{tag}", **spec})


async def _converge(h: Harness) -> None:
    await h.reconcile()
    h.roll_out()
    await h.reconcile()


def _template_image(h: Harness) -> str:
    dep = h.api.objects[("Deployment", "default", "aidbox")]
    return str(dep["spec"]["template"]["spec"]["containers"][0]["image"])


def _warnings(h: Harness, reason: str) -> list[dict[str, Any]]:
    return [e for e in h.api.events if e["reason"] == reason and e["type"] == "Warning"]


async def _upgraded(h: Harness, to: str) -> None:
    h.update_spec(image=f"{REPO}:{to}")
    await h.reconcile()
    h.roll_out()
    await h.reconcile()


async def test_a_ready_release_is_recorded_and_an_upgrade_reported() -> None:
    h = Harness()
    _cluster(h, "2510.1")
    await _converge(h)
    assert h.status()["versionRecord"]["newestReady"] == "2510.1"
    h.update_spec(image=f"{REPO}:2510.2")
    await h.reconcile()
    h.pod("aidbox-2", ready=False)  # the surge pod of the new release, starting
    h.deployment_status(replicas=3, readyReplicas=2, updatedReplicas=1, availableReplicas=2)
    await h.reconcile()
    upgrade = h.status()["upgrade"]
    assert (upgrade["from"], upgrade["to"], upgrade["strategy"]) == ("2510.1", "2510.2", "Rolling")
    assert upgrade["pods"] == {"2510.1": 2, "2510.2": 1}
    assert h.condition("Reconciling")["status"] == "True"
    assert h.status()["versionRecord"]["newestReady"] == "2510.1"  # not Ready yet
    h.roll_out()
    await h.reconcile()
    assert "upgrade" not in h.status()
    assert h.status()["versionRecord"]["newestReady"] == "2510.2"
    assert h.event_reasons().count("UpgradeStarted") == 1
    assert h.event_reasons().count("UpgradeCompleted") == 1


async def test_a_downgrade_is_refused_until_the_annotation_names_it() -> None:
    h = Harness()
    _cluster(h, "2510.1")
    await _converge(h)
    await _upgraded(h, "2510.2")
    generation_before = h.status()["observedGeneration"]
    writes = h.api.requests.get("apply", 0)
    h.update_spec(image=f"{REPO}:2409.2")
    await h.reconcile()
    await h.reconcile()
    stalled = h.condition("Stalled")
    assert stalled["status"] == "True" and stalled["reason"] == "DowngradeRefused"
    assert "2409.2" in stalled["message"] and "2510.2" in stalled["message"]
    assert ALLOW_DOWNGRADE_ANNOTATION in stalled["message"]
    assert h.status()["observedGeneration"] == generation_before
    assert _template_image(h) == f"{REPO}:2510.2"
    assert h.api.requests.get("apply", 0) == writes  # nothing running was touched
    assert len(_warnings(h, "DowngradeRefused")) == 1
    h.annotate({ALLOW_DOWNGRADE_ANNOTATION: "2409.1"})  # another release: still refused
    await h.reconcile()
    assert h.condition("Stalled")["reason"] == "DowngradeRefused"
    h.annotate({ALLOW_DOWNGRADE_ANNOTATION: "2409.2"})
    await h.reconcile()
    assert _template_image(h) == f"{REPO}:2409.2"
    h.roll_out()
    await h.reconcile()
    assert h.status()["versionRecord"]["newestReady"] == "2510.2"  # the database saw 2510.2
    # Once it runs, the annotation can go: the guard judges changes, not what already runs.
    h.annotate({ALLOW_DOWNGRADE_ANNOTATION: ""})
    await h.reconcile()
    assert h.condition("Stalled")["status"] == "False"
    assert h.condition("Ready")["status"] == "True"


async def test_the_record_survives_an_operator_restart() -> None:
    h = Harness()
    _cluster(h, "2510.1")
    await _converge(h)
    await _upgraded(h, "2510.2")
    h.restart()
    h.update_spec(image=f"{REPO}:2510.1")
    await h.reconcile()
    assert h.condition("Stalled")["reason"] == "DowngradeRefused"
    assert _template_image(h) == f"{REPO}:2510.2"


async def test_guard_off_lets_the_downgrade_roll(monkeypatch: pytest.MonkeyPatch) -> None:
    """The guard's tests can fail: without it the older release is rolled out."""
    monkeypatch.setattr(cluster_pass, "_downgrade", lambda *args: None)
    h = Harness()
    _cluster(h, "2510.1")
    await _converge(h)
    await _upgraded(h, "2510.2")
    h.update_spec(image=f"{REPO}:2409.2")
    await h.reconcile()
    assert _template_image(h) == f"{REPO}:2409.2"


async def test_a_failed_upgrade_is_held_explained_and_not_recorded() -> None:
    h = Harness()
    _cluster(h, "2510.1")
    await _converge(h)
    h.update_spec(image=f"{REPO}:2510.3")
    await h.reconcile()
    h.pod("aidbox-2", ready=False, restarts=2, exit_message=MIGRATION_FAILED)
    h.deployment_status(replicas=3, readyReplicas=2, updatedReplicas=1, availableReplicas=2)
    await h.reconcile()
    stalled = h.condition("Stalled")
    assert stalled["status"] == "True" and stalled["reason"] == "UpgradeFailed"
    assert MIGRATION_FAILED in stalled["message"]
    assert "2 pod(s) of 2510.1 keep serving" in stalled["message"]
    assert "never became Ready" in stalled["message"]
    assert h.condition("Degraded")["reason"] == "UpgradeFailed"
    assert (
        h.status()["observedGeneration"]
        == h.api.objects[("AidboxCluster", "default", "aidbox")]["metadata"]["generation"]
    )
    assert h.status()["versionRecord"]["newestReady"] == "2510.1"
    assert len(_warnings(h, "UpgradeFailed")) == 1
    # Going back is no downgrade: 2510.3 never became Ready.
    h.update_spec(image=f"{REPO}:2510.1")
    await h.reconcile()
    assert _template_image(h) == f"{REPO}:2510.1"
    assert h.condition("Stalled")["reason"] != "DowngradeRefused"


async def test_new_pods_stopped_by_their_database_are_no_failed_upgrade() -> None:
    """The database, not the release, stopped them: said as such and nothing held for good
    (the same release starts once the database answers)."""
    h = Harness()
    _cluster(h, "2510.1")
    await _converge(h)
    h.update_spec(image=f"{REPO}:2510.3")
    await h.reconcile()
    refused = (
        'org.postgresql.util.PSQLException: FATAL: password authentication failed for user "a"'
    )
    h.pod("aidbox-2", ready=False, restarts=2, exit_message=refused)
    h.deployment_status(replicas=3, readyReplicas=2, updatedReplicas=1, availableReplicas=2)
    await h.reconcile()
    assert h.condition("Degraded")["reason"] == "DatabaseRefused"
    assert "password authentication failed" in h.condition("Degraded")["message"]
    assert h.condition("Stalled")["status"] == "False"  # the old pods still serve
    assert not _warnings(h, "UpgradeFailed")


async def test_recreate_stops_old_pods_first_for_a_release_change_only() -> None:
    h = Harness()
    _cluster(h, "2510.1", upgrade={"strategy": "Recreate"})
    await _converge(h)

    def strategy() -> str:
        dep = h.api.objects[("Deployment", "default", "aidbox")]
        return str(dep["spec"]["strategy"]["type"])

    assert strategy() == "RollingUpdate"  # nothing to stop on a first install
    h.update_spec(image=f"{REPO}:2510.2")
    await h.reconcile()
    assert strategy() == "Recreate"
    # Old pods still terminating: the strategy holds even once the template is new.
    h.deployment_status(replicas=0, readyReplicas=0, updatedReplicas=0, availableReplicas=0)
    await h.reconcile()
    assert strategy() == "Recreate"
    assert h.status()["upgrade"]["strategy"] == "Recreate"
    assert "every old pod stops" in h.status()["upgrade"]["reason"]
    # Every old pod gone, the new ones starting: the Deployment rolls again (for later
    # changes), and this change is still reported as the Recreate it is.
    h.roll_out(ready=False)
    await h.reconcile()
    assert strategy() == "RollingUpdate"
    h.deployment_observed()
    await h.reconcile()
    assert h.status()["upgrade"]["strategy"] == "Recreate"
    assert "every old pod stops" in h.status()["upgrade"]["reason"]
    h.roll_out()
    await h.reconcile()
    assert strategy() == "RollingUpdate"
    h.deployment_observed()  # the strategy change is a new Deployment generation
    await h.reconcile()
    assert "upgrade" not in h.status()
    h.config("ConfigMap", "aidbox", {"BOX_ID": "b"})  # a config change rolls as usual
    await h.reconcile()
    assert strategy() == "RollingUpdate"


class FakeRegistry:
    """Answers as a registry would: a tag names whatever digest it names now."""

    def __init__(self) -> None:
        self.tags: dict[str, Resolved] = {}
        self.calls: list[str] = []
        self.down = False

    async def resolve(self, image: str, credentials: Any = None) -> Resolved:
        self.calls.append(image)
        if self.down:
            raise ResolveError(f"registry for {image} did not answer")
        return self.tags[image.rsplit(":", 1)[1]]


async def test_a_moving_tag_is_pinned_and_moves_only_when_asked() -> None:
    registry = FakeRegistry()
    registry.tags["stable"] = Resolved(DIGEST_A, "2510.1")
    h = Harness(resolver=registry)
    _cluster(h, "stable")
    await _converge(h)
    assert _template_image(h) == f"{REPO}@{DIGEST_A}"
    pinned = h.status()["pinnedImage"]
    assert (pinned["requested"], pinned["image"], pinned["version"]) == (
        f"{REPO}:stable",
        f"{REPO}@{DIGEST_A}",
        "2510.1",
    )
    assert h.status()["version"] == "2510.1"
    registry.tags["stable"] = Resolved(DIGEST_B, "2510.2")  # the tag moves
    h.drop_pod("aidbox-0")  # a pod is replaced: nothing re-reads the tag
    await h.reconcile()
    h.restart()
    await h.reconcile()
    assert _template_image(h) == f"{REPO}@{DIGEST_A}"
    assert len(registry.calls) == 1
    h.update_spec(upgrade={"tagRefresh": "2026-12-01"})
    await h.reconcile()
    assert _template_image(h) == f"{REPO}@{DIGEST_B}"
    assert h.status()["pinnedImage"]["refresh"] == "2026-12-01"
    h.pod("aidbox-2", ready=False)  # the surge pod of the new pin, starting
    h.deployment_status(replicas=2, readyReplicas=1, updatedReplicas=1, availableReplicas=1)
    await h.reconcile()
    # The release the old pin named, though status now holds the new pin only.
    upgrade = h.status()["upgrade"]
    assert (upgrade["from"], upgrade["to"]) == ("2510.1", "2510.2")
    assert upgrade["pods"] == {"2510.1": 1, "2510.2": 1}
    started = [e["message"] for e in h.api.events if e["reason"] == "UpgradeStarted"]
    assert len(started) == 1 and started[0].startswith("2510.1 -> 2510.2:"), started


async def test_an_unresolvable_tag_holds_without_touching_what_runs() -> None:
    registry = FakeRegistry()
    registry.tags["stable"] = Resolved(DIGEST_A, "2510.1")
    h = Harness(resolver=registry)
    _cluster(h, "stable")
    await _converge(h)
    generation = h.status()["observedGeneration"]
    registry.down = True
    h.update_spec(image=f"{REPO}:latest")
    result = await h.reconcile()
    assert h.condition("Reconciling")["reason"] == "TagUnresolved"
    assert "did not answer" in h.condition("Reconciling")["message"]
    assert h.status()["observedGeneration"] == generation
    assert _template_image(h) == f"{REPO}@{DIGEST_A}"
    assert result.retry_after is not None


async def test_a_moving_tag_counts_by_the_release_it_names() -> None:
    registry = FakeRegistry()
    registry.tags["stable"] = Resolved(DIGEST_A, "2409.2")
    h = Harness(resolver=registry)
    _cluster(h, "2510.1")
    await _converge(h)
    h.update_spec(image=f"{REPO}:stable")
    await h.reconcile()
    assert h.condition("Stalled")["reason"] == "DowngradeRefused"
    assert "2409.2" in h.condition("Stalled")["message"]
    assert _template_image(h) == f"{REPO}:2510.1"


async def test_fixed_references_are_never_looked_up() -> None:
    registry = FakeRegistry()
    h = Harness(resolver=registry)
    _cluster(h, "2510.1")
    await _converge(h)
    h.update_spec(image=f"{REPO}@{DIGEST_A}")
    await h.reconcile()
    assert registry.calls == []
    assert _template_image(h) == f"{REPO}@{DIGEST_A}"


async def test_a_running_unpinned_tag_is_pinned_with_the_next_rollout_only() -> None:
    """An operator upgrade must not restart every cluster that runs a moving tag: a Deployment
    already running the tag as written keeps it until its pods roll for another reason, or
    until the user asks with tagRefresh."""
    registry = FakeRegistry()
    registry.tags["stable"] = Resolved(DIGEST_A, "2510.1")
    h = Harness()  # an operator without pinning made the Deployment
    _cluster(h, "stable")
    await _converge(h)
    h.resolver = registry
    h.restart()
    writes = h.api.requests.get("apply", 0)
    result = await h.reconcile()
    assert result.phase == "Ready"  # the pass ran and judged the cluster
    assert _template_image(h) == f"{REPO}:stable"
    assert h.api.requests.get("apply", 0) == writes and registry.calls == []
    h.config("ConfigMap", "aidbox", {"BOX_ID": "b"})  # the pods roll anyway
    await h.reconcile()
    assert _template_image(h) == f"{REPO}@{DIGEST_A}"
    assert h.status()["pinnedImage"]["image"] == f"{REPO}@{DIGEST_A}"


async def test_tag_refresh_pins_a_running_unpinned_tag() -> None:
    registry = FakeRegistry()
    registry.tags["stable"] = Resolved(DIGEST_B, "2510.2")
    h = Harness()
    _cluster(h, "stable")
    await _converge(h)
    h.resolver = registry
    h.restart()
    h.update_spec(upgrade={"tagRefresh": "now"})
    await h.reconcile()
    assert _template_image(h) == f"{REPO}@{DIGEST_B}"
