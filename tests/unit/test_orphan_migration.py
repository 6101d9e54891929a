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
