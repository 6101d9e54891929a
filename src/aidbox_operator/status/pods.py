"""What a pod says about the cluster's health, in the words `kubectl get pods` uses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

FAILING_REASONS = frozenset(
    {
        "CrashLoopBackOff",
        "ImagePullBackOff",
        "ErrImagePull",
        "InvalidImageName",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
        "OOMKilled",
        "Error",
        "Unschedulable",
    }
)


@dataclass(frozen=True)
class PodSummary:
    name: str
    node: str
    phase: str
    ready: bool
    template_hash: str
    reason: str  # "" when nothing is wrong
    terminating: bool
    ip: str = ""
    uid: str = ""


def _container_reason(status: dict[str, Any]) -> str:
    state = status.get("state") or {}
    for phase in ("waiting", "terminated"):
        reason = (state.get(phase) or {}).get("reason")
        if reason:
            return str(reason)
    last = (status.get("lastState") or {}).get("terminated") or {}
    if last.get("reason") == "OOMKilled":
        return "OOMKilled"
    return ""


def summarize_pod(body: dict[str, Any]) -> PodSummary:
    meta = body.get("metadata") or {}
    status = body.get("status") or {}
    conditions = {c.get("type"): c for c in status.get("conditions") or []}
    ready = (conditions.get("Ready") or {}).get("status") == "True"
    reason = next(
        (r for r in map(_container_reason, status.get("containerStatuses") or []) if r), ""
    )
    scheduled = conditions.get("PodScheduled") or {}
    if not reason and scheduled.get("status") == "False":
        reason = str(scheduled.get("reason") or "Unschedulable")
    if not reason and status.get("phase") == "Running" and not ready:
        reason = "NotReady"
    return PodSummary(
        name=str(meta.get("name", "")),
        node=str((body.get("spec") or {}).get("nodeName") or ""),
        phase=str(status.get("phase") or "Pending"),
        ready=ready,
        template_hash=str((meta.get("labels") or {}).get("pod-template-hash", "")),
        reason=reason,
        terminating=bool(meta.get("deletionTimestamp")),
        ip=str(status.get("podIP") or ""),
        uid=str(meta.get("uid") or ""),
    )
