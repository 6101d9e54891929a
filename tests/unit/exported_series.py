"""What a scrape of the operator holds: every series name with its label names, for tests that
check PromQL (the alerts, the dashboard) names only what the operator really exports."""

from __future__ import annotations

import re

from prometheus_client import CollectorRegistry, generate_latest

from aidbox_operator import metrics
from aidbox_operator.metrics import ClusterFacts, ClusterSeries

# Identifiers of the operator's own series in a PromQL expression.
OPERATOR_SERIES = re.compile(r"\baidbox_(?:operator|cluster)_[a-zA-Z0-9_]+")


def fake_cluster_series() -> CollectorRegistry:
    """A registry with every per-cluster series present: a cluster mid-upgrade and Stalled."""
    registry = CollectorRegistry()
    series = ClusterSeries()
    facts = ClusterFacts(
        phase="Degraded",
        version="2510.3",
        ready=False,
        desired=3,
        ready_replicas=2,
        pods_by_version={"2510.2": 2, "2510.3": 1},
        upgrading=True,
        stalled="UpgradeFailed",
    )
    series.set(("prod", "fhir"), facts)
    registry.register(series)
    return registry


def exported_series() -> dict[str, set[str] | None]:
    """Each series name a scrape of the operator has -> its label names (None: a labelled
    family with no child yet shows no sample, so its labels cannot be read)."""
    text = (
        generate_latest(metrics.REGISTRY).decode() + generate_latest(fake_cluster_series()).decode()
    )
    found: dict[str, set[str] | None] = {}
    # The text format names a counter's family with its _total already.
    suffixes = {"histogram": ("_bucket", "_count", "_sum")}
    for family, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, flags=re.MULTILINE):
        for suffix in suffixes.get(kind, ("",)):
            found.setdefault(family + suffix, None)
    for name, labels in re.findall(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})? ", text, re.M):
        names = set(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="', labels))
        found[name] = (found.get(name) or set()) | names
    return found
