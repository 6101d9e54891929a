"""Whose object is it? The operator changes only objects that carry an owner reference to the
AidboxCluster's uid, or that a person explicitly handed over with the adopt annotation."""

from __future__ import annotations

from typing import Any, Literal

from aidbox_operator.model.constants import ADOPT_ANNOTATION, FIELD_MANAGER
from aidbox_operator.status.blockers import Blocker

Ownership = Literal["ours", "adoptable", "foreign"]


def judge(body: dict[str, Any], cluster_name: str, cluster_uid: str | None) -> Ownership:
    meta = body.get("metadata") or {}
    refs = meta.get("ownerReferences") or []
    if cluster_uid and any(r.get("uid") == cluster_uid for r in refs):
        return "ours"
    adopt = (meta.get("annotations") or {}).get(ADOPT_ANNOTATION)
    if adopt == cluster_name and not any(r.get("controller") for r in refs):
        return "adoptable"
    return "foreign"


def describe_holder(body: dict[str, Any]) -> str:
    """Who the object belongs to, in words a person can act on."""
    meta = body.get("metadata") or {}
    refs = meta.get("ownerReferences") or []
    if refs:
        return "owned by " + ", ".join(f"{r.get('kind')}/{r.get('name')}" for r in refs)
    managers = sorted(
        {
            str(m.get("manager"))
            for m in meta.get("managedFields") or []
            if m.get("manager") and m.get("manager") != FIELD_MANAGER and not m.get("subresource")
        }
    )
    if managers:
        return "managed by " + ", ".join(managers)
    return "not created by this operator"


def conflict_blocker(kind: str, name: str, holder: str, cluster_name: str) -> Blocker:
    return Blocker(
        "ResourceConflict",
        f"{kind}/{name} already exists and is {holder}; the operator leaves it unchanged and "
        f"holds this cluster until it is gone (delete or rename it), or annotate it "
        f"{ADOPT_ANNOTATION}={cluster_name} to hand it over to this AidboxCluster",
        "refused",
    )


def last_other_writer(body: dict[str, Any]) -> str:
    """The field manager other than ours that wrote the object most recently."""
    entries = [
        m
        for m in (body.get("metadata") or {}).get("managedFields") or []
        if m.get("manager") != FIELD_MANAGER and not m.get("subresource")
    ]
    entries.sort(key=lambda m: str(m.get("time") or ""))
    return str(entries[-1].get("manager")) if entries else "an unknown writer"
