"""Which Events a status change deserves (pure). Only transitions post Events, so a problem
that persists across retries is announced once, not once per retry."""

from __future__ import annotations

from aidbox_operator.model import ClusterStatus
from aidbox_operator.model.status import DEGRADED, PROGRESSING, READY

EventSpec = tuple[str, str, str]  # (type, reason, message)


def _is_paused(status: ClusterStatus) -> bool:
    progressing = status.condition(PROGRESSING)
    return bool(progressing and progressing.reason == "Paused")


def upgrade_events(before: ClusterStatus, after: ClusterStatus) -> list[EventSpec]:
    """UpgradeStarted when a release change begins, UpgradeCompleted when every pod runs it;
    both at once when the whole change happened between two status writes."""
    events: list[EventSpec] = []
    prior, now = before.upgrade, after.upgrade
    if now is not None and (prior is None or prior.to_image != now.to_image):
        events.append(
            ("Normal", "UpgradeStarted", f"{now.from_version} -> {now.to_version}: {now.reason}")
        )
    finished = prior is not None and now is None and prior.to_image == after.image
    # Both images known: a Deployment that went away (a namespace being deleted) is no upgrade.
    unseen = prior is None and now is None and "" not in (before.image, after.image)
    unseen = unseen and before.image != after.image
    if unseen:
        events.append(
            ("Normal", "UpgradeStarted", f"{before.version} -> {after.version} ({after.image})")
        )
    if finished or unseen:
        origin = prior.from_version if prior is not None else before.version
        events.append(
            ("Normal", "UpgradeCompleted", f"every pod runs {after.version} (from {origin})")
        )
    return events


def transition_events(before: ClusterStatus, after: ClusterStatus) -> list[EventSpec]:
    events: list[EventSpec] = upgrade_events(before, after)
    old_ready, new_ready = before.condition(READY), after.condition(READY)
    if new_ready and new_ready.status == "True" and not (old_ready and old_ready.status == "True"):
        events.append(("Normal", "ClusterReady", new_ready.message))
    if _is_paused(after) != _is_paused(before):
        progressing = after.condition(PROGRESSING)
        if _is_paused(after) and progressing:
            events.append(("Normal", "Paused", progressing.message))
        else:
            events.append(("Normal", "Resumed", "reconciliation resumed"))
    events += _refusal_events(before, after)
    old_bad, new_bad = before.condition(DEGRADED), after.condition(DEGRADED)
    if new_bad and new_bad.status == "True" and not (old_bad and old_bad.same_state(new_bad)):
        events.append(("Warning", new_bad.reason, new_bad.message))
    if old_bad and old_bad.status == "True" and new_bad and new_bad.status == "False":
        events.append(("Normal", "Recovered", f"no longer {old_bad.reason}"))
    return events


def _refusal_events(before: ClusterStatus, after: ClusterStatus) -> list[EventSpec]:
    """One Warning when the API server starts refusing the cluster's new pods (a quota, say):
    nothing else tells the user, the old pods keep serving and the rollout only waits."""
    old, new = before.condition(PROGRESSING), after.condition(PROGRESSING)
    if new and new.reason == "PodsRefused" and not (old and old.reason == "PodsRefused"):
        return [("Warning", "PodsRefused", new.message)]
    return []
