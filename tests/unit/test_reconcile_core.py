"""The reconcile core (ClusterReconciler, Controller, ObjectStore, EventRecorder) against the
in-memory FakeKube: every path of a pass, in milliseconds, with no sandbox and no Go."""

from __future__ import annotations

import asyncio
import base64

import pytest
from fakeapi import Harness

from aidbox_operator.model.constants import (
    ADOPT_ANNOTATION,
    PAUSED_ANNOTATION,
    RESTART_ANNOTATION,
    RESTARTED_AT_ANNOTATION,
)
from aidbox_operator.reconcile.fights import FIGHT_REPAIRS
from aidbox_operator.runtime.client import ApiError

IMAGE = "healthsamurai/aidboxone:2510"


def _ready_cluster(h: Harness, **spec: object) -> None:
    h.config("ConfigMap", "aidbox", {"BOX_ID": "a"})
    h.config("Secret", "aidbox", {"BOX_LICENSE": "bGlj"})
    h.cluster(**{"image": IMAGE, **spec})


async def _converge(h: Harness) -> None:
    await h.reconcile()
    h.roll_out()
    await h.reconcile()


async def test_first_pass_creates_owned_children_and_reports() -> None:
    h = Harness()
    _ready_cluster(h)
    result = await h.reconcile()
    uid = h.api.objects[("AidboxCluster", "default", "aidbox")]["metadata"]["uid"]
    for kind in ("Deployment", "Service", "PodDisruptionBudget", "Secret"):
        name = "aidbox-auth-keys" if kind == "Secret" else "aidbox"
        body = h.api.get_object(kind, name)
        assert body is not None, kind
        assert body["metadata"]["ownerReferences"][0]["uid"] == uid
    assert ("Created", "Deployment aidbox") in result.changes
    assert "status" not in h.api.objects[("AidboxCluster", "default", "aidbox")]  # not yet seen
    h.roll_out(ready=False)
    await h.reconcile()
    assert h.condition("Reconciling")["status"] == "True"
    assert h.status()["observedGeneration"] == 1
    h.roll_out()
    await h.reconcile()
    assert h.status()["phase"] == "Ready"
    assert h.condition("Ready")["status"] == "True" and h.condition("Stalled")["status"] == "False"
    assert "ClusterReady" in h.event_reasons()


async def test_steady_state_makes_no_writes() -> None:
    h = Harness()
    _ready_cluster(h)
    await _converge(h)
    writes = h.api.writes()
    for _ in range(3):
        await h.reconcile()
    assert h.api.writes() == writes


async def test_drift_is_repaired_and_a_deleted_child_recreated() -> None:
    h = Harness()
    _ready_cluster(h)
    await _converge(h)
    dep = h.api.objects[("Deployment", "default", "aidbox")]
    dep["spec"]["template"]["spec"]["containers"][0]["image"] = "evil:1"
    dep["metadata"]["resourceVersion"] = "999999"
    result = await h.reconcile()
    assert ("DriftRepaired", "Deployment aidbox") in result.changes
    image = h.api.objects[("Deployment", "default", "aidbox")]["spec"]["template"]["spec"]
    assert image["containers"][0]["image"] == IMAGE
    del h.api.objects[("Service", "default", "aidbox")]
    result = await h.reconcile()
    assert ("Recreated", "Service aidbox") in result.changes


async def test_config_change_rolls_the_pods() -> None:
    h = Harness()
    _ready_cluster(h)
    await _converge(h)

    def config_hash() -> str:
        dep = h.api.objects[("Deployment", "default", "aidbox")]
        return str(dep["spec"]["template"]["metadata"]["annotations"]["aidbox.io/config-hash"])

    before = config_hash()
    h.config("ConfigMap", "aidbox", {"BOX_ID": "b"})
    result = await h.reconcile()
    assert config_hash() != before
    assert any("rolling restart" in message for _, message in result.changes)


async def test_keys_are_generated_once_and_never_shown() -> None:
    h = Harness()
    _ready_cluster(h)
    await _converge(h)
    secret = h.api.get_object("Secret", "aidbox-auth-keys")
    assert secret is not None
    private = base64.b64decode(secret["data"]["BOX_SECURITY_AUTH_KEYS_PRIVATE"]).decode()
    assert private.startswith("-----BEGIN PRIVATE KEY-----")
    h.update_spec(replicas=3)
    await h.reconcile()
    again = h.api.get_object("Secret", "aidbox-auth-keys")
    assert again is not None and again["data"] == secret["data"]
    shown = str(h.api.events) + str(h.status())
    assert (
        private.splitlines()[1] not in shown
        and secret["data"]["BOX_SECURITY_AUTH_KEYS_SECRET"] not in shown
    )


async def test_deleted_keys_are_held_by_default() -> None:
    h = Harness()
    _ready_cluster(h)
    await _converge(h)
    del h.api.objects[("Secret", "default", "aidbox-auth-keys")]
    writes = h.api.writes()
    await h.reconcile()
    assert h.api.get_object("Secret", "aidbox-auth-keys") is None
    assert h.condition("Stalled")["reason"] == "AuthKeysMissing"
    assert "invalidate every token" in h.condition("Degraded")["message"]
    assert "AuthKeysMissing" in h.event_reasons()
    assert h.api.writes() - writes == 2  # the status and one Warning Event, nothing else


async def test_deleted_keys_regenerate_when_the_policy_says_so() -> None:
    h = Harness()
    _ready_cluster(h, authKeys={"onLoss": "Regenerate"})
    await _converge(h)
    del h.api.objects[("Secret", "default", "aidbox-auth-keys")]
    await h.reconcile()
    assert h.api.get_object("Secret", "aidbox-auth-keys") is not None
    warnings = [e for e in h.api.events if e["type"] == "Warning"]
    assert [e["reason"] for e in warnings] == ["AuthKeysRegenerated"]


async def test_half_set_user_keys_are_refused() -> None:
    h = Harness()
    h.config("ConfigMap", "aidbox", {})
    h.config("Secret", "aidbox", {"BOX_SECURITY_AUTH_KEYS_PRIVATE": "eA=="})
    h.cluster(image=IMAGE)
    await h.reconcile()
    assert h.api.get_object("Deployment", "aidbox") is None
    assert h.condition("Stalled")["reason"] == "AuthKeysIncomplete"
    assert "BOX_SECURITY_AUTH_KEYS_PUBLIC" in h.condition("Degraded")["message"]


async def test_prune_deletes_only_its_own_pdb() -> None:
    h = Harness()
    _ready_cluster(h)
    await _converge(h)
    h.update_spec(replicas=1)
    result = await h.reconcile()
    assert ("Deleted", "PodDisruptionBudget aidbox") in result.changes
    assert h.api.get_object("PodDisruptionBudget", "aidbox") is None


async def test_pause_holds_changes_and_reports_them_pending() -> None:
    h = Harness()
    _ready_cluster(h)
    await _converge(h)
    h.annotate({PAUSED_ANNOTATION: "true"})
    h.update_spec(image="healthsamurai/aidboxone:2511")
    writes = h.api.requests["apply"]
    await h.reconcile()
    assert h.api.requests["apply"] == writes
    assert h.status()["observedGeneration"] == 1 and h.status()["phase"] == "Paused"
    assert h.condition("Ready")["status"] == "False"
    assert h.condition("Reconciling") | {} and h.condition("Reconciling")["reason"] == "Paused"
    h.annotate({})
    await h.reconcile()
    h.roll_out()
    await h.reconcile()
    assert h.api.requests["apply"] > writes and h.status()["observedGeneration"] == 2
    assert "Resumed" in h.event_reasons()


async def test_missing_reference_holds_without_touching_what_runs() -> None:
    h = Harness()
    _ready_cluster(h)
    await _converge(h)
    before = h.api.get_object("Deployment", "aidbox")
    h.update_spec(configMapRef={"name": "absent"})
    await h.reconcile()
    assert h.api.get_object("Deployment", "aidbox") == before
    assert h.status()["observedGeneration"] == 1
    assert h.condition("Reconciling")["reason"] == "MissingReference"
    assert h.status()["missingReferences"] == ["ConfigMap/absent"]
    h.config("ConfigMap", "absent", {})
    await h.reconcile()
    h.roll_out()
    await h.reconcile()
    assert h.status()["observedGeneration"] == 2


async def test_refused_child_is_reported_once_and_retried_with_backoff() -> None:
    h = Harness()
    _ready_cluster(h)
    await _converge(h)
    h.api.refuse = lambda verb, kind, body: (
        ApiError(422, "Invalid", 'Deployment.apps "aidbox" is invalid: spec.x: Invalid value')
        if verb == "apply" and kind == "Deployment"
        else None
    )
    h.update_spec(replicas=3)
    for _ in range(3):
        result = await h.reconcile()
    assert result.refused
    assert h.condition("Stalled")["reason"] == "ApplyFailed"
    assert "spec.x: Invalid value" in h.condition("Degraded")["message"]
    assert h.status()["observedGeneration"] == 2 and h.condition("Ready")["status"] == "False"
    assert h.event_reasons().count("ApplyFailed") == 1
    backoff = h.controller.workers.backoff
    assert backoff(("default", "aidbox")) > backoff(("x", "y")) / 2


@pytest.mark.parametrize("kind", ["Deployment", "Service", "PodDisruptionBudget", "Secret"])
async def test_foreign_object_is_left_alone_and_reported(kind: str) -> None:
    h = Harness()
    name = "aidbox-auth-keys" if kind == "Secret" else "aidbox"
    h.api.put({"kind": kind, "metadata": {"name": name}, "spec": {"mine": True}}, manager="helm")
    before = h.api.get_object(kind, name)
    _ready_cluster(h)
    result = await h.reconcile()
    assert h.api.get_object(kind, name) == before
    assert h.condition("Stalled")["reason"] == "ResourceConflict"
    message = h.condition("Degraded")["message"]
    assert f"{kind}/{name}" in message and "helm" in message
    assert h.event_reasons().count("ResourceConflict") == 1
    assert result.retry_after is not None
    del h.api.objects[(kind, "default", name)]
    await h.reconcile()
    h.roll_out()
    await h.reconcile()
    assert h.condition("Stalled")["status"] == "False"


async def test_adopt_annotation_hands_an_object_over() -> None:
    h = Harness()
    h.api.put(
        {
            "kind": "Service",
            "metadata": {"name": "aidbox", "annotations": {ADOPT_ANNOTATION: "aidbox"}},
            "spec": {},
        }
    )
    _ready_cluster(h)
    result = await h.reconcile()
    assert ("Adopted", "Service aidbox") in result.changes
    service = h.api.get_object("Service", "aidbox")
    assert service is not None and service["metadata"]["ownerReferences"]


async def test_crash_between_create_and_status_is_recognised() -> None:
    h = Harness()
    _ready_cluster(h)
    await h.reconcile()
    # A restart: a fresh controller with an empty cache over the same API.
    fresh = Harness()
    fresh.api = h.api
    fresh.controller = type(h.controller)(h.api, workers=1)
    h.roll_out()
    await fresh.reconcile()
    assert fresh.condition("Stalled")["status"] == "False"
    assert fresh.status()["observedGeneration"] == 1


async def test_keys_secret_made_meanwhile_is_judged_not_overwritten() -> None:
    h = Harness()
    _ready_cluster(h)
    h.sync()
    real_post = h.api._post

    def racing_post(key, body, *rest):  # type: ignore[no-untyped-def]
        if key[0] == "Secret":
            real_post(key, body, *rest)  # someone (a crashed pass) made it a moment earlier
        return real_post(key, body, *rest)

    h.api._post = racing_post  # type: ignore[method-assign]
    result = await h.reconcile()
    assert result.retry_after is not None and not result.refused
    h.api._post = real_post  # type: ignore[method-assign]
    await h.reconcile()
    h.roll_out()
    await h.reconcile()
    assert h.api.get_object("Deployment", "aidbox") is not None
    assert h.condition("Stalled")["status"] == "False"


async def test_fighting_writer_is_named_and_slowed_down() -> None:
    h = Harness()
    _ready_cluster(h)
    await _converge(h)
    applies = []
    for _ in range(FIGHT_REPAIRS + 3):
        h.api.put(
            {**h.api.objects[("Deployment", "default", "aidbox")], "kind": "Deployment"},
            manager="other-ci",
        )
        dep = h.api.objects[("Deployment", "default", "aidbox")]
        dep["spec"]["template"]["spec"]["containers"][0]["image"] = "other:1"
        before = h.api.requests["apply"]
        await h.reconcile()
        h.deployment_observed()
        await h.reconcile()
        applies.append(h.api.requests["apply"] - before)
    assert applies[:FIGHT_REPAIRS] == [1] * FIGHT_REPAIRS
    assert applies[FIGHT_REPAIRS:] == [0, 0, 0]
    assert h.condition("Degraded")["reason"] == "ConflictingWriter"
    assert "other-ci" in h.condition("Degraded")["message"]


async def test_version_rule_follows_the_replicas_an_autoscaler_chose() -> None:
    h = Harness()
    _ready_cluster(h, replicas=1, manageReplicas=False, image="healthsamurai/aidboxone:2206")
    await h.reconcile()
    h.roll_out()
    await h.reconcile()
    assert h.condition("Stalled")["status"] == "False"
    dep = h.api.objects[("Deployment", "default", "aidbox")]
    dep["spec"]["replicas"] = 3  # an HPA scaled the Deployment itself
    dep["metadata"]["resourceVersion"] = "777777"
    await h.reconcile()
    assert h.condition("Stalled")["reason"] == "UnsupportedVersion"


async def test_pdb_follows_the_replicas_an_autoscaler_chose() -> None:
    h = Harness()
    _ready_cluster(h, replicas=1, manageReplicas=False)
    await h.reconcile()
    assert h.api.get_object("PodDisruptionBudget", "aidbox") is None
    dep = h.api.objects[("Deployment", "default", "aidbox")]
    dep["spec"]["replicas"] = 4
    dep["metadata"]["resourceVersion"] = "888888"
    await h.reconcile()
    assert h.api.get_object("PodDisruptionBudget", "aidbox") is not None


async def test_no_work_while_not_leading() -> None:
    h = Harness()
    _ready_cluster(h)
    h.controller.pause()
    h.controller.start()
    try:
        h.sync()
        assert h.controller.queue.depth == 1  # seen: the cluster is queued
        # ... and looked at: the worker has reached the leadership gate and waits there (one
        # that got past it would have taken the cluster). Then nothing may have been written.
        gate = h.controller.workers.leading
        async with asyncio.timeout(5):
            while len(gate._waiters) != 1:  # type: ignore[attr-defined]  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        assert h.api.writes() == 0 and h.controller.queue.depth == 1
        h.controller.resume()
        for _ in range(100):
            await asyncio.sleep(0.01)
            if h.api.get_object("Deployment", "aidbox"):
                break
        assert h.api.get_object("Deployment", "aidbox") is not None
    finally:
        await h.controller.stop()


async def test_invalid_spec_in_the_api_is_reported() -> None:
    h = Harness()
    _ready_cluster(h, replicas=-3)
    await h.reconcile()
    assert h.condition("Stalled")["reason"] == "InvalidSpec"
    assert "replicas" in h.condition("Stalled")["message"]
    assert h.status()["phase"] == "Invalid"


async def test_object_made_while_the_cluster_waits_is_not_taken_over() -> None:
    h = Harness()
    h.config("Secret", "aidbox", {})
    h.cluster(image=IMAGE)
    await h.reconcile()  # held: no ConfigMap yet, the Deployment name looked up as absent
    h.api.put({"kind": "Deployment", "metadata": {"name": "aidbox"}, "spec": {}}, manager="helm")
    before = h.api.get_object("Deployment", "aidbox")
    h.config("ConfigMap", "aidbox", {})
    await h.reconcile()
    assert h.api.get_object("Deployment", "aidbox") == before
    assert h.condition("Stalled")["reason"] == "ResourceConflict"


async def test_schema_refusal_reported_as_500_is_a_refusal() -> None:
    h = Harness()
    _ready_cluster(h)
    await _converge(h)
    h.api.refuse = lambda verb, kind, body: (
        ApiError(500, "Internal", "failed to create typed patch object: .spec.x: not declared")
        if verb == "apply"
        else None
    )
    h.update_spec(replicas=3)
    result = await h.reconcile()
    assert result.refused and h.condition("Stalled")["reason"] == "ApplyFailed"


async def test_a_fight_stays_reported_between_repairs() -> None:
    h = Harness()
    _ready_cluster(h)
    await _converge(h)
    for _ in range(FIGHT_REPAIRS):
        dep = h.api.objects[("Deployment", "default", "aidbox")]
        dep["spec"]["template"]["spec"]["containers"][0]["image"] = "other:1"
        dep["metadata"]["resourceVersion"] = str(next(h.api._ids))
        await h.reconcile()
        h.deployment_observed()
    await h.reconcile()  # nothing drifted this time, but the fight is not over
    assert h.condition("Degraded")["reason"] == "ConflictingWriter"


async def test_running_versions_come_from_the_pods_health() -> None:
    import httpx

    from aidbox_operator.reconcile.aidbox_health import AidboxHealth

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"status": "pass", "about": {"version": "2510.1"}})

    h = Harness()
    learned: list[tuple[str, str]] = []
    health = AidboxHealth(True, httpx.MockTransport(answer), on_learned=learned.append)
    h.controller.reconciler.health = health
    _ready_cluster(h)
    await _converge(h)
    # The pass did not wait for the pods: their answers queue the cluster for another one.
    await health.settled()
    assert learned == [("default", "aidbox")] * 2
    await h.reconcile()
    assert h.status()["runningVersions"] == {"2510.1": 2}
    await health.close()


async def test_status_keys_that_went_away_are_removed() -> None:
    """A merge patch leaves keys it does not name: after a rollback the status once read
    {"2510.1": 3, "2510.2": 1} for minutes. The status write names the gone keys with null."""
    h = Harness()
    _ready_cluster(h)
    await _converge(h)
    stored = h.api.objects[("AidboxCluster", "default", "aidbox")]
    stored["status"]["runningVersions"] = {"2510.1": 3, "2510.2": 1}
    stored["metadata"]["resourceVersion"] = str(next(h.api._ids))
    await h.reconcile()  # no pod reports a version (health reads are off here)
    assert h.status()["runningVersions"] == {}


async def test_a_new_cluster_reads_only_its_configuration_and_deployment_name() -> None:
    """No GET of the Service, PodDisruptionBudget or keys Secret names before the first pass
    makes them: each is made with a request that fails if anything holds the name. The
    Deployment's name is read: nothing is made beside a foreign Deployment."""
    h = Harness()
    _ready_cluster(h)
    await h.reconcile()
    reads = sorted(path for verb, path in h.api.log if verb == "get")
    assert reads == [
        "/api/v1/namespaces/default/configmaps/aidbox",
        "/api/v1/namespaces/default/secrets/aidbox",
        "/apis/apps/v1/namespaces/default/deployments/aidbox",
    ]
    for kind in ("Deployment", "Service", "PodDisruptionBudget"):
        assert h.api.get_object(kind, "aidbox") is not None, kind


async def test_object_made_between_look_and_create_is_not_taken() -> None:
    """A Service appears after the pass decided to create one: the create fails, the Service
    stays as its maker left it, and the same reconcile reports the conflict."""
    h = Harness()
    _ready_cluster(h)
    foreign = {"kind": "Service", "metadata": {"name": "aidbox"}, "spec": {"mine": True}}

    def appears(verb: str, kind: str, body: object) -> None:
        if verb == "apply" and kind == "Service" and not h.api.get_object("Service", "aidbox"):
            h.api.put(foreign, manager="helm")

    h.api.refuse = appears  # type: ignore[assignment]
    await h.reconcile()
    assert h.api.requests["delete"] == 1  # the PodDisruptionBudget made before the Service
    assert h.api.get_object("PodDisruptionBudget", "aidbox") is None
    service = h.api.get_object("Service", "aidbox")
    assert service is not None and service["spec"] == {"mine": True}
    assert "ownerReferences" not in service["metadata"]
    assert h.condition("Stalled")["reason"] == "ResourceConflict"
    assert "Service/aidbox" in h.condition("Degraded")["message"]
    # The taken name was found before any pod of this cluster could run beside it, and the
    # keys Secret the try had made is gone again: the namespace is as a read would have left it.
    assert h.api.get_object("Deployment", "aidbox") is None
    assert h.api.get_object("Secret", "aidbox-auth-keys") is None
    assert not [e for e in h.api.events if e["reason"] == "Created"]


async def test_a_foreign_deployment_is_found_before_anything_is_made() -> None:
    h = Harness()
    _ready_cluster(h)
    h.api.put({"kind": "Deployment", "metadata": {"name": "aidbox"}, "spec": {"mine": True}})
    await h.reconcile()
    assert h.condition("Stalled")["reason"] == "ResourceConflict"
    for kind, name in (("Service", "aidbox"), ("PodDisruptionBudget", "aidbox")):
        assert h.api.get_object(kind, name) is None, kind
    assert h.api.get_object("Secret", "aidbox-auth-keys") is None
    assert h.api.get_object("Deployment", "aidbox")["spec"] == {"mine": True}  # type: ignore[index]
    assert h.api.requests["delete"] == 0


async def test_a_deployment_made_after_its_name_was_read_is_not_taken() -> None:
    """The Deployment appears between the read of its name and the operator's create: the
    create fails, the Deployment stays as its maker left it, the conflict is reported."""
    h = Harness()
    _ready_cluster(h)
    foreign = {"kind": "Deployment", "metadata": {"name": "aidbox"}, "spec": {"mine": True}}

    def appears(verb: str, kind: str, body: object) -> None:
        if verb == "apply" and kind == "Deployment" and not h.api.get_object(kind, "aidbox"):
            h.api.put(foreign, manager="helm")

    h.api.refuse = appears  # type: ignore[assignment]
    await h.reconcile()
    deployment = h.api.get_object("Deployment", "aidbox")
    assert deployment is not None and deployment["spec"] == {"mine": True}
    assert "ownerReferences" not in deployment["metadata"]
    assert h.condition("Stalled")["reason"] == "ResourceConflict"
    # The PodDisruptionBudget the try made is deleted again (the Service, which the operator
    # may not delete, stays owned by the cluster: README, Ownership).
    assert h.api.get_object("PodDisruptionBudget", "aidbox") is None


async def test_refused_precondition_falls_back_to_reading_every_name() -> None:
    """An API server that refuses a resourceVersion on creation: the pass reads instead."""
    h = Harness()
    _ready_cluster(h)
    refusal = ApiError(500, "InternalError", "resourceVersion should not be set on objects")

    def no_precondition(verb: str, kind: str, body: dict[str, dict[str, str]] | None) -> object:
        versioned = verb == "apply" and "resourceVersion" in (body or {}).get("metadata", {})
        return refusal if versioned else None

    h.api.refuse = no_precondition  # type: ignore[assignment]
    await h.reconcile()
    h.roll_out()
    await h.reconcile()
    assert h.condition("Ready")["status"] == "True"
    assert not h.controller.reconciler.children.creates_only
    reads = {path.rsplit("/", 2)[-2] for verb, path in h.api.log if verb == "get"}
    assert {"deployments", "services", "poddisruptionbudgets"} <= reads


QUOTA_REFUSAL = (
    'pods "aidbox-7c9f-x2k4q" is forbidden: exceeded quota: pods-limit, requested: pods=1, '
    "used: pods=2, limited: pods=2"
)


async def test_pods_refused_by_a_quota_are_named_once_and_never_read_as_failed() -> None:
    """The image changes; the Deployment controller cannot create the new pod (a quota): the
    cluster says so (Progressing/PodsRefused, the API server's words), posts one Warning, and
    is neither Stalled nor Degraded while the old pods serve."""
    h = Harness()
    _ready_cluster(h, replicas=2)
    await _converge(h)
    h.update_spec(image="healthsamurai/aidboxone:2510.2")
    await h.reconcile()
    refused = {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate"}
    conditions = [{**refused, "message": QUOTA_REFUSAL}]
    ready = {"replicas": 2, "readyReplicas": 2, "availableReplicas": 2, "updatedReplicas": 0}
    h.deployment_status(conditions=conditions, **ready)
    await h.reconcile()
    progressing = h.condition("Progressing")
    assert progressing["reason"] == "PodsRefused"
    assert "exceeded quota: pods-limit" in progressing["message"]
    assert h.condition("Reconciling")["status"] == "True"
    assert h.condition("Ready")["reason"] == "PodsRefused"
    assert h.condition("Stalled")["status"] == "False"
    assert h.condition("Degraded")["status"] == "False"
    await h.reconcile()  # judged again, nothing new: no second Event
    assert h.event_reasons().count("PodsRefused") == 1
    # The Deployment's progress deadline passes: the upgrade failed (final for this generation:
    # a channel halts on it), and the refusal is the reason given.
    stuck = {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}
    h.deployment_status(conditions=[*conditions, stuck], **ready)
    await h.reconcile()
    assert h.condition("Stalled")["reason"] == "UpgradeFailed"
    assert "refuses its pods (pods " in h.condition("Stalled")["message"]
    assert "exceeded quota: pods-limit" in h.condition("Stalled")["message"]


async def test_a_new_cluster_whose_pods_are_refused_says_why() -> None:
    h = Harness()
    _ready_cluster(h, replicas=2)
    await h.reconcile()
    refused = {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate"}
    h.deployment_status(conditions=[{**refused, "message": QUOTA_REFUSAL}], replicas=0)
    await h.reconcile()
    assert h.condition("Progressing")["reason"] == "PodsRefused"
    ready = h.condition("Ready")
    assert (ready["status"], ready["reason"]) == ("False", "PodsRefused")
    assert ready["message"].startswith("0/2 pods ready; the API server refuses new pods: pods ")
    stuck = {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}
    h.deployment_status(conditions=[{**refused, "message": QUOTA_REFUSAL}, stuck], replicas=0)
    await h.reconcile()
    assert h.condition("Stalled")["reason"] == "RolloutStuck"
    assert "exceeded quota: pods-limit" in h.condition("Stalled")["message"]


async def test_a_restart_asked_for_rolls_the_pods_once_and_is_recorded() -> None:
    h = Harness()
    _ready_cluster(h)
    await _converge(h)

    def template_annotations() -> dict[str, str]:
        dep = h.api.objects[("Deployment", "default", "aidbox")]
        return dict(dep["spec"]["template"]["metadata"].get("annotations") or {})

    assert RESTARTED_AT_ANNOTATION not in template_annotations()
    assert "restartedAt" not in h.status()
    h.annotate({RESTART_ANNOTATION: "2026-12-02T01:50:00Z"})
    result = await h.reconcile()
    assert template_annotations()[RESTARTED_AT_ANNOTATION] == "2026-12-02T01:50:00Z"
    assert any("restart requested at 2026-12-02T01:50:00Z" in m for _, m in result.changes)
    h.roll_out()
    await h.reconcile()
    assert h.status()["restartedAt"] == "2026-12-02T01:50:00Z"
    writes = h.api.writes()
    await h.reconcile()  # the same request again (a re-applied manifest, a resync): nothing
    assert h.api.writes() == writes
