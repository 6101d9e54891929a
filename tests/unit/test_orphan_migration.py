"""`kubectl delete abx X --cascade=orphan`, then X applied again (on the in-memory FakeKube):
the children handed over with the adopt annotation, the keys Secret among them, keep what they
hold (the JWT keys, the pods), and the new cluster reports its pods at once."""

from __future__ import annotations

from typing import Any

from fakeapi import Harness

from aidbox_operator.model.constants import ADOPT_ANNOTATION

IMAGE = "healthsamurai/aidboxone:2510"
KEYS = "aidbox-auth-keys"


def _ready(h: Harness) -> None:
    h.config("ConfigMap", "aidbox", {"BOX_ID": "a"})
    h.config("Secret", "aidbox", {"BOX_LICENSE": "bGlj"})
    h.cluster(image=IMAGE)


def _orphan(h: Harness) -> None:
    """The cluster deleted with propagationPolicy Orphan: the garbage collector strips the
    owner references to it from its dependents, which stay."""
    uid = h.api.objects[("AidboxCluster", "default", "aidbox")]["metadata"]["uid"]
    del h.api.objects[("AidboxCluster", "default", "aidbox")]
    _orphan_refs(h, uid)


def _orphan_refs(h: Harness, uid: str) -> None:
    """The garbage collector's part: owner references to `uid` removed."""
    for body in h.api.objects.values():
        meta = body["metadata"]
        refs = [r for r in meta.get("ownerReferences") or [] if r.get("uid") != uid]
        if refs != (meta.get("ownerReferences") or []):
            meta["ownerReferences"] = refs
            meta["resourceVersion"] = str(next(h.api._ids))


def _hand_over(h: Harness, kinds: tuple[str, ...]) -> None:
    for (kind, _, _), body in h.api.objects.items():
        if kind in kinds and body["metadata"].get("labels", {}).get("app.kubernetes.io/instance"):
            body["metadata"].setdefault("annotations", {})[ADOPT_ANNOTATION] = "aidbox"
            body["metadata"]["resourceVersion"] = str(next(h.api._ids))


def _owned_by(h: Harness, kind: str, name: str) -> set[str]:
    body = h.api.get_object(kind, name) or {}
    return {r["uid"] for r in body["metadata"].get("ownerReferences") or []}


async def _migrated(h: Harness, kinds: tuple[str, ...]) -> tuple[dict[str, Any], Any]:
    _ready(h)
    await h.reconcile()
    h.roll_out()
    await h.reconcile()
    assert h.condition("Ready")["status"] == "True"
    keys = (h.api.get_object("Secret", KEYS) or {})["data"]
    _orphan(h)
    h.sync()  # the operator sees the deletion
    _hand_over(h, kinds)
    h.cluster(image=IMAGE)
    return keys, await h.reconcile()


async def test_the_keys_secret_is_adopted_with_its_keys_and_the_status_is_current() -> None:
    h = Harness()
    keys, result = await _migrated(h, ("Deployment", "Service", "PodDisruptionBudget", "Secret"))
    uid = h.api.objects[("AidboxCluster", "default", "aidbox")]["metadata"]["uid"]
    assert ("Adopted", f"Secret {KEYS} (its JWT keys kept)") in result.changes
    secret = h.api.get_object("Secret", KEYS) or {}
    assert secret["data"] == keys and ADOPT_ANNOTATION not in secret["metadata"]["annotations"]
    for kind in ("Deployment", "Service", "PodDisruptionBudget"):
        assert _owned_by(h, kind, "aidbox") == {uid}, kind
    assert _owned_by(h, "Secret", KEYS) == {uid}
    # The pods did not change (no watch event told of them): reported at once all the same.
    assert h.condition("Ready")["status"] == "True", h.status()
    assert h.status()["ready"] == "2/2" and h.condition("Stalled")["status"] == "False"


async def test_a_keys_secret_not_handed_over_stays_a_conflict() -> None:
    h = Harness()
    keys, _ = await _migrated(h, ("Deployment", "Service", "PodDisruptionBudget"))
    assert h.condition("Stalled")["reason"] == "ResourceConflict"
    assert f"Secret/{KEYS}" in h.condition("Stalled")["message"]
    assert (h.api.get_object("Secret", KEYS) or {})["data"] == keys
    assert _owned_by(h, "Secret", KEYS) == set()


async def test_made_again_before_the_garbage_collector_ran_it_waits_then_adopts() -> None:
    """Owner references to the deleted cluster still in place: those children are another
    cluster's (a conflict) until the garbage collector removes the references; then the next
    pass adopts them."""
    h = Harness()
    _ready(h)
    await h.reconcile()
    h.roll_out()
    await h.reconcile()
    keys = (h.api.get_object("Secret", KEYS) or {})["data"]
    old = h.api.objects[("AidboxCluster", "default", "aidbox")]["metadata"]["uid"]
    del h.api.objects[("AidboxCluster", "default", "aidbox")]
    h.sync()
    _hand_over(h, ("Deployment", "Service", "PodDisruptionBudget", "Secret"))
    h.cluster(image=IMAGE)
    await h.reconcile()
    assert h.condition("Stalled")["reason"] == "ResourceConflict"
    assert _owned_by(h, "Deployment", "aidbox") == {old}
    _orphan_refs(h, old)
    result = await h.reconcile()
    uid = h.api.objects[("AidboxCluster", "default", "aidbox")]["metadata"]["uid"]
    assert {c[1] for c in result.changes if c[0] == "Adopted"} == {
        f"Secret {KEYS} (its JWT keys kept)",
        "Deployment aidbox",
        "Service aidbox",
        "PodDisruptionBudget aidbox",
    }
    assert _owned_by(h, "Deployment", "aidbox") == {uid} == _owned_by(h, "Secret", KEYS)
    assert (h.api.get_object("Secret", KEYS) or {})["data"] == keys
    assert h.condition("Ready")["status"] == "True"
