"""Letting go of a Deployment's replicas without resetting them.

With server-side apply, a field the operator's field manager alone owns is removed when its
next apply leaves it out, and a Deployment without replicas gets the default, 1. So before the
first apply that leaves replicas to another controller (spec.autoscaling, manageReplicas
false), a second field manager applies the count the Deployment runs: it co-owns the field,
the operator's apply then drops only its own claim, and the count stays until the HPA (or the
user's controller) changes it, which takes the field over. This is Kubernetes' documented way
to hand replicas to an HPA (server-side apply, "Transferring ownership").
"""

from __future__ import annotations

from typing import Any

from aidbox_operator.model.constants import FIELD_MANAGER
from aidbox_operator.render.autoscaling import REPLICAS_LEFT_TO_ANNOTATION
from aidbox_operator.runtime.client import KubeClient
from aidbox_operator.runtime.kinds import DEPLOYMENTS

HANDOVER_MANAGER = f"{FIELD_MANAGER}-handover"


def _annotated(body: dict[str, Any]) -> bool:
    return REPLICAS_LEFT_TO_ANNOTATION in (body["metadata"].get("annotations") or {})


def needs_handover(manifest: dict[str, Any], observed: dict[str, Any] | None) -> bool:
    """The apply of `manifest` leaves replicas out of a Deployment whose replicas the operator
    may still own alone (the annotation is not on it yet)."""
    if manifest["kind"] != "Deployment" or observed is None:
        return False
    return _annotated(manifest) and not _annotated(observed)


async def hand_over(client: KubeClient, observed: dict[str, Any]) -> None:
    """Apply the running count under the hand-over manager. Not forced: if another controller
    changed the count since it was read, the API answers 409 and the pass is tried again."""
    meta = observed["metadata"]
    manifest = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
        "spec": {"replicas": int((observed.get("spec") or {}).get("replicas", 1))},
    }
    await client.apply(DEPLOYMENTS, manifest, field_manager=HANDOVER_MANAGER, force=False)
