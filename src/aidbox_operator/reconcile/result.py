"""What one reconcile pass did, for the controller (retries), metrics and tests."""

from __future__ import annotations

from dataclasses import dataclass, field

from aidbox_operator.metrics import ClusterFacts


@dataclass
class PassResult:
    # (Event reason, message) for each real change made: posted as Normal Events.
    changes: list[tuple[str, str]] = field(default_factory=list)
    # (reason, message) of one-off happenings that deserve a Warning Event.
    warnings: list[tuple[str, str]] = field(default_factory=list)
    # (reason, message) of problems that degrade the cluster without blocking it.
    problems: list[tuple[str, str]] = field(default_factory=list)
    status_written: bool = False
    # Reason of the blocker that held or refused this generation ("" when none).
    blocked: str = ""
    # The API server refused a child: retry with backoff, not at once.
    refused: bool = False
    phase: str = ""
    # What the per-cluster metrics show, from the status this pass computed (None: none).
    facts: ClusterFacts | None = None
    # Look again after this many seconds even without a watch event (nothing announces that
    # a foreign object went away or that a fighting writer stopped).
    retry_after: float | None = None

    def look_again(self, seconds: float) -> None:
        self.retry_after = seconds if self.retry_after is None else min(self.retry_after, seconds)
