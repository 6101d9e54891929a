"""What a pod says about the cluster's health, in the words `kubectl get pods` uses."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

from aidbox_operator.model.constants import CONTAINER_NAME
from aidbox_operator.status.database import database_problem

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


# Kept for every pod the operator watches (slots: no per-instance dict).
@dataclass(frozen=True, slots=True)
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
    image: str = ""  # the Aidbox container's image as the pod spec names it
    restarts: int = 0
    # Why the container last stopped: its termination message, else reason and exit code.
    last_exit: str = ""
    # DatabaseUnreachable or DatabaseRefused when that message shows its database stopped it.
    database: str = ""


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


def _init_failed(status: dict[str, Any]) -> bool:
    """An init container waiting (crash loop, image pull) or ended with an error; one that
    ran to completion (reason Completed, exit 0) or is running is no problem."""
    state = status.get("state") or {}
    if (state.get("waiting") or {}).get("reason") not in (None, "PodInitializing"):
        return True
    return int((state.get("terminated") or {}).get("exitCode") or 0) != 0


def _last_exit(status: dict[str, Any]) -> tuple[str, str]:
    """Why the container last stopped, and the database problem that made it stop if any."""
    state = status.get("state") or {}
    ended = state.get("terminated") or (status.get("lastState") or {}).get("terminated") or {}
    if not ended:
        return "", ""
    message = str(ended.get("message") or "").strip()
    if not message:
        return f"{ended.get('reason') or 'exited'} (exit code {ended.get('exitCode', '?')})", ""
    if problem := database_problem(message):
        return problem[1], problem[0]
    # A termination message can be long (up to 4 KiB): status keeps its first line.
    return message.splitlines()[0][:300], ""


def summarize_pod(body: dict[str, Any]) -> PodSummary:
    meta = body.get("metadata") or {}
    status = body.get("status") or {}
    conditions = {c.get("type"): c for c in status.get("conditions") or []}
    ready = (conditions.get("Ready") or {}).get("status") == "True"
    containers = status.get("containerStatuses") or []
    # An init container that fails keeps the pod from starting (its containers wait in
    # PodInitializing meanwhile): its reason comes first.
    failed_init = [c for c in status.get("initContainerStatuses") or [] if _init_failed(c)]
    reason = next((r for r in map(_container_reason, [*failed_init, *containers]) if r), "")
    spec_containers = (body.get("spec") or {}).get("containers") or [{}]
    # The kubelet lists container statuses by name, not in spec order: with sidecars the
    # Aidbox container's is found by its name.
    main = next((c for c in containers if c.get("name") == CONTAINER_NAME), None)
    main = main or (containers[0] if containers else {})
    scheduled = conditions.get("PodScheduled") or {}
    if not reason and scheduled.get("status") == "False":
        reason = str(scheduled.get("reason") or "Unschedulable")
    if not reason and status.get("phase") == "Running" and not ready:
        reason = "NotReady"
    last_exit, database = _last_exit(main)
    # Kept once for all pods: values from small sets (nodes, phases, reasons, images).
    return PodSummary(
        name=str(meta.get("name", "")),
        node=_shared((body.get("spec") or {}).get("nodeName") or ""),
        phase=_shared(status.get("phase") or "Pending"),
        ready=ready,
        template_hash=str((meta.get("labels") or {}).get("pod-template-hash", "")),
        reason=_shared(reason),
        terminating=bool(meta.get("deletionTimestamp")),
        ip=str(status.get("podIP") or ""),
        uid=str(meta.get("uid") or ""),
        image=_shared(spec_containers[0].get("image") or ""),
        restarts=int(main.get("restartCount") or 0),
        last_exit=last_exit,
        database=_shared(database),
    )


def _shared(value: Any) -> str:
    # Only for values from small sets: an interned string may outlive its last user (Python
    # 3.12 keeps every one for the life of the process).
    return sys.intern(str(value))
