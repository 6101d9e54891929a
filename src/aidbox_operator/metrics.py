"""Prometheus metrics of the operator itself, served at /metrics.

Imported by reconcile (which counts) and cli (which serves); it imports nothing of ours.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

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

    def clear(self) -> None:
        self._phases.clear()
        self._publish()

    def _publish(self) -> None:
        counts = Tally(self._phases.values())
        phases = ("Pending", "Progressing", "Ready", "Degraded", "Invalid", "Stopped", "Paused")
        for phase in phases:
            CLUSTERS.labels(phase=phase).set(counts.get(phase, 0))


PHASES = PhaseTracker()


@dataclass(frozen=True, slots=True)
class ClusterFacts:
    """What the per-cluster series show, as the cluster's last status said."""

    phase: str
    version: str
    ready: bool
    desired: int
    ready_replicas: int
    pods_by_version: dict[str, int] = field(default_factory=dict)
    upgrading: bool = False
    stalled: str = ""  # the Stalled reason, "" when not Stalled


_CLUSTER = ("namespace", "name")
Samples = list[tuple[tuple[str, ...], float]]  # (values of the extra labels, value)
# (name, help, extra labels, a cluster's samples from its facts)
_SERIES: tuple[tuple[str, str, tuple[str, ...], Callable[[ClusterFacts], Samples]], ...] = (
    (
        "aidbox_cluster_info",
        "1 for each AidboxCluster, labelled with its phase and the release its pod template runs.",
        ("phase", "version"),
        lambda f: [((f.phase, f.version), 1)],
    ),
    (
        "aidbox_cluster_ready",
        "1 while the cluster's Ready condition is True.",
        (),
        lambda f: [((), f.ready)],
    ),
    (
        "aidbox_cluster_replicas_desired",
        "Pods the cluster's spec asks for.",
        (),
        lambda f: [((), f.desired)],
    ),
    (
        "aidbox_cluster_replicas_ready",
        "Pods passing their readiness probe.",
        (),
        lambda f: [((), f.ready_replicas)],
    ),
    (
        "aidbox_cluster_pods",
        "Pods of the cluster by the Aidbox release they run (two releases while one rolls).",
        ("version",),
        lambda f: [((version,), n) for version, n in f.pods_by_version.items()],
    ),
    (
        "aidbox_cluster_upgrading",
        "1 while a release change rolls.",
        (),
        lambda f: [((), f.upgrading)],
    ),
    (
        "aidbox_cluster_stalled",
        "1 while the cluster is Stalled, labelled with the reason (needs a person).",
        ("reason",),
        lambda f: [((f.stalled,), 1)] if f.stalled else [],
    ),
)


class ClusterSeries(Collector):
    """Per-cluster series, made at scrape time from each cluster's last facts: nothing is kept
    per series (a cluster costs its facts, a few hundred bytes), a deleted cluster's series go
    with its facts, and a changed label (a phase, a release) leaves no stale series. At most
    1 info + 1 ready + 2 replicas + 1 upgrading + 1 stalled + one pods series per release
    running (2 while a release rolls) = 8 series a cluster."""

    def __init__(self) -> None:
        self._facts: dict[tuple[str, str], ClusterFacts] = {}

    def set(self, key: tuple[str, str], facts: ClusterFacts) -> None:
        self._facts[key] = facts

    def forget(self, key: tuple[str, str]) -> None:
        self._facts.pop(key, None)

    def clear(self) -> None:
        self._facts.clear()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        facts = list(self._facts.items())  # the scrape runs on another thread: a stable copy
        for name, text, extra, samples in _SERIES:
            family = GaugeMetricFamily(name, text, labels=[*_CLUSTER, *extra])
            for (namespace, cluster), fact in facts:
                for values, value in samples(fact):
                    family.add_metric([namespace, cluster, *values], float(value))
            yield family


CLUSTER_SERIES = ClusterSeries()
REGISTRY.register(CLUSTER_SERIES)


def serve(port: int, address: str = "0.0.0.0") -> None:
    """Serve /metrics from a background thread (never on the event loop)."""
    start_http_server(port, addr=address, registry=REGISTRY)
