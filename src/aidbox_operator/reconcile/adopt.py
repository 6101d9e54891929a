"""Recognising the operator's own earlier work after a create answered 409 AlreadyExists.

A pass can be cut short at any instant (the operator killed, leadership lost, a timeout after
the API server had already acted): the object was created but this process never learnt it.
Whatever then exists under the name is taken over only if it is owned (ownerReference uid) by
the very AidboxCluster being reconciled; anything else is reported, never changed.
"""

from __future__ import annotations

from typing import Any

from aidbox_operator.model import AidboxCluster
from aidbox_operator.reconcile.kube import ApiError, KubeClient, ResourceKind


class NotOwnedError(ApiError):
    """An object the operator would create exists and belongs to someone else (handled, and
    retried with back-off, like the API's own 409)."""

    def __init__(self, kind: str, namespace: str, name: str, cluster: str) -> None:
        super().__init__(
            409,
            "Conflict",
            f"{kind} {namespace}/{name} already exists and is not owned by AidboxCluster "
            f"{cluster}: left unchanged; delete or rename it so the operator can create its own",
        )
        self.kind = kind


def owned_by(body: dict[str, Any], uid: str | None) -> bool:
    refs = (body.get("metadata") or {}).get("ownerReferences") or []
    return bool(uid) and any(ref.get("uid") == uid for ref in refs)


async def existing_own(
    client: KubeClient, kind: ResourceKind, cluster: AidboxCluster, name: str
) -> dict[str, Any]:
    """The object a create just found existing, if this cluster owns it; else NotOwnedError."""
    body = await client.get(kind, cluster.namespace, name)
    if body is None:
        # Deleted between the create and this read: the next pass creates it again.
        raise ApiError(409, "Conflict", f"{kind.kind} {name} was deleted meanwhile; retrying")
    if not owned_by(body, cluster.metadata.uid):
        raise NotOwnedError(kind.kind, cluster.namespace, name, cluster.name)
    return body
