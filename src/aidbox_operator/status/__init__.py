"""Pure judgement of a cluster's state: blockers, pod summaries, status and its Events.

No I/O and no clock: reconcile hands in what it observed (and the time) and writes the result.
"""

from aidbox_operator.status.blockers import (
    Blocker,
    invalid_spec_blocker,
    missing_blocker,
    pause_blocker,
    version_blocker,
)
from aidbox_operator.status.compute import compute_status
from aidbox_operator.status.events import transition_events
from aidbox_operator.status.observation import Observation, Rollout
from aidbox_operator.status.pods import FAILING_REASONS, PodSummary, summarize_pod

__all__ = [
    "FAILING_REASONS",
    "Blocker",
    "Observation",
    "PodSummary",
    "Rollout",
    "compute_status",
    "invalid_spec_blocker",
    "missing_blocker",
    "pause_blocker",
    "summarize_pod",
    "transition_events",
    "version_blocker",
]
