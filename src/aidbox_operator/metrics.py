"""Prometheus metrics of the operator itself, served at /metrics.

Imported by reconcile (which counts) and cli (which serves); it imports nothing of ours.
"""

from __future__ import annotations

from collections import Counter as Tally

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

REGISTRY = CollectorRegistry()

RECONCILES = Counter(
    "aidbox_operator_reconciles", "Reconcile passes by result.", ["result"], registry=REGISTRY
)
RECONCILE_SECONDS = Histogram(
    "aidbox_operator_reconcile_duration_seconds",
    "Time of one reconcile pass.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)
API_REQUESTS = Counter(
    "aidbox_operator_api_requests", "Kubernetes API requests by verb.", ["verb"], registry=REGISTRY
)
API_RECEIVED_BYTES = Counter(
    "aidbox_operator_api_received_bytes",
    "Response bytes received from the Kubernetes API by the operator's client (requests and "
    "watch streams; not kopf's own AidboxCluster watch).",
    registry=REGISTRY,
)
CLUSTERS = Gauge(
    "aidbox_operator_clusters", "Managed AidboxClusters by phase.", ["phase"], registry=REGISTRY
)
DRIFT_REPAIRS = Counter(
    "aidbox_operator_drift_repairs",
    "Children restored after someone else changed or deleted them.",
    ["kind"],
    registry=REGISTRY,
)
CONFIG_ROLLOUTS = Counter(
    "aidbox_operator_config_rollouts",
    "Rolling restarts started because a referenced ConfigMap or Secret changed.",
    registry=REGISTRY,
)
LEADER = Gauge(
    "aidbox_operator_leader", "1 while this replica holds the leader lease.", registry=REGISTRY
)
QUEUE_DEPTH = Gauge(
    "aidbox_operator_queue_depth",
    "Clusters waiting for or in a reconcile pass (0: everything is in sync).",
    registry=REGISTRY,
)


class PhaseTracker:
    """Keeps the clusters-by-phase gauge equal to the phases last reported."""

    def __init__(self) -> None:
        self._phases: dict[tuple[str, str], str] = {}

    def set(self, key: tuple[str, str], phase: str) -> None:
        if self._phases.get(key) != phase:
            self._phases[key] = phase
            self._publish()

    def forget(self, key: tuple[str, str]) -> None:
        if self._phases.pop(key, None) is not None:
            self._publish()

    def _publish(self) -> None:
        counts = Tally(self._phases.values())
        for phase in ("Pending", "Progressing", "Ready", "Degraded", "Invalid", "Stopped"):
            CLUSTERS.labels(phase=phase).set(counts.get(phase, 0))


PHASES = PhaseTracker()


def serve(port: int, address: str = "0.0.0.0") -> None:
    """Serve /metrics from a background thread (never on the event loop)."""
    start_http_server(port, addr=address, registry=REGISTRY)
