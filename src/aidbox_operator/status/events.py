"""Which Events a status change deserves (pure). Only transitions post Events, so a problem
that persists across retries is announced once, not once per retry."""

from __future__ import annotations

from aidbox_operator.model import ClusterStatus
from aidbox_operator.model.status import DEGRADED, PROGRESSING, READY

EventSpec = tuple[str, str, str]  # (type, reason, message)


def _is_paused(status: ClusterStatus) -> bool:
    progressing = status.condition(PROGRESSING)
    return bool(progressing and progressing.reason == "Paused")


def transition_events(before: ClusterStatus, after: ClusterStatus) -> list[EventSpec]:
    events: list[EventSpec] = []
    old_ready, new_ready = before.condition(READY), after.condition(READY)
    if new_ready and new_ready.status == "True" and not (old_ready and old_ready.status == "True"):
        events.append(("Normal", "ClusterReady", new_ready.message))
    if _is_paused(after) != _is_paused(before):
        progressing = after.condition(PROGRESSING)
        if _is_paused(after) and progressing:
            events.append(("Normal", "Paused", progressing.message))
        else:
            events.append(("Normal", "Resumed", "reconciliation resumed"))
    old_bad, new_bad = before.condition(DEGRADED), after.condition(DEGRADED)
    if new_bad and new_bad.status == "True" and not (old_bad and old_bad.same_state(new_bad)):
        events.append(("Warning", new_bad.reason, new_bad.message))
    if old_bad and old_bad.status == "True" and new_bad and new_bad.status == "False":
        events.append(("Normal", "Recovered", f"no longer {old_bad.reason}"))
    return events
