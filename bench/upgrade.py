"""The operator-upgrade scenario (`--operator-upgrade N`): N clusters Ready under the current
operator; then a next release (bench/next_release.py: one more environment variable on every
pod template) starts with each `--upgrade-bounds` value in turn, and the fleet's rollouts are
followed by a watch of the Deployments until every cluster runs that release's template.

A cluster rolls from the first Deployment event that shows the release's variable until its
Deployment is complete and Ready. Before that moment the Deployment must not change at all
(waiting clusters keep their pods): any event with a new resourceVersion counts as an early
write. One sandbox; each bound renders a new value of the variable, so each phase rolls the
whole fleet.
"""

from __future__ import annotations

import argparse
import bisect
import time
from pathlib import Path
from typing import Any

from kube import Key, Kube, Watcher, key_of
from procs import Operator, cpu_seconds, sandbox_pids, workers_args, writes
from report import cell, percentile, r
from workload import (
    OP_PREFIX,
    ReadyTimes,
    cluster_key,
    cluster_object,
    cluster_ready,
    install_crd,
    log,
    make_configs,
    make_namespaces,
    namespace_args,
    nodes_for,
    pmap,
    start_sandbox,
    wait_converged,
)

from aidbox_sandbox import Sandbox

BENCH = Path(__file__).resolve().parent
NEXT_RELEASE = BENCH / "next_release.py"
RELEASE_VARIABLE = "AIDBOX_BENCH_RELEASE"
QUEUED = "RolloutQueued"


def has_release(deployment: dict[str, Any], value: str) -> bool:
    """Whether the Deployment's pod template carries the release's variable with `value`."""
    containers = deployment["spec"]["template"]["spec"].get("containers") or []
    return any(
        var.get("name") == RELEASE_VARIABLE and var.get("value") == value
        for container in containers
        for var in container.get("env") or []
    )


def rollout_done(deployment: dict[str, Any]) -> bool:
    """Complete (every replica updated and available, no old one left) and Ready."""
    want = int(deployment["spec"].get("replicas", 1))
    status = deployment.get("status") or {}
    return bool(
        status.get("observedGeneration", 0) >= deployment["metadata"].get("generation", 0)
        and status.get("updatedReplicas", 0) == want
        and status.get("replicas", 0) == want
        and status.get("availableReplicas", 0) == want
        and status.get("readyReplicas", 0) == want
    )


class RolloutTracker:
    """Deployment events in: when each cluster started and finished rolling to `value`, how
    many rolled at once, and changes to Deployments whose turn had not come."""

    def __init__(self, value: str, keys: list[Key]) -> None:
        self.value = value
        self.keys = set(keys)
        self.armed_at: float | None = None
        self.versions: dict[Key, str] = {}
        self.started: dict[Key, float] = {}
        self.done: dict[Key, float] = {}
        self.early_writes: dict[Key, int] = {}
        self.series: list[tuple[float, int]] = []  # (time, clusters rolling) at each change
        self.max_rolling = 0

    def arm(self) -> None:
        """From now on a change to a Deployment that is not rolling yet is an early write."""
        self.armed_at = time.monotonic()

    @property
    def rolling(self) -> int:
        return len(self.started) - len(self.done)

    def on_event(self, etype: str, obj: dict[str, Any], t: float) -> None:
        key = key_of(obj)
        if key not in self.keys or etype == "DELETED":
            return
        version = obj["metadata"]["resourceVersion"]
        changed = self.versions.get(key) not in (None, version)
        self.versions[key] = version
        if key not in self.started:
            if has_release(obj, self.value):
                self.started[key] = t
            elif changed and self.armed_at is not None:
                self.early_writes[key] = self.early_writes.get(key, 0) + 1
        if key in self.started and key not in self.done and rollout_done(obj):
            self.done[key] = t
        if not self.series or self.series[-1][1] != self.rolling:
            self.series.append((t, self.rolling))
            self.max_rolling = max(self.max_rolling, self.rolling)


class QueuedSeen:
    """AidboxCluster events in: the clusters that reported Progressing/RolloutQueued."""

    def __init__(self) -> None:
        self.keys: set[Key] = set()

    def on_event(self, etype: str, obj: dict[str, Any], t: float) -> None:
        for cond in (obj.get("status") or {}).get("conditions") or []:
            if cond.get("type") == "Progressing" and cond.get("reason") == QUEUED:
                self.keys.add(key_of(obj))


def ready_fleet(kube: Kube, op: Operator, keys: list[Key], args: argparse.Namespace) -> float:
    """The CRD, namespaces, configuration, the current operator and N clusters, until every
    cluster is Ready and the operator quiet; returns the seconds that took."""
    install_crd(kube)
    make_namespaces(kube, [f"{OP_PREFIX}{i}" for i in range(args.namespaces)], args.threads)
    make_configs(kube, keys, args.threads)
    op.start()
    times = ReadyTimes(cluster_ready)
    watcher = Watcher(kube, "AidboxCluster", times.on_event, namespace_prefix=OP_PREFIX)
    watcher.start()
    watcher.synced.wait(60)
    t0 = time.monotonic()
    pmap(lambda k: kube.create(cluster_object(*k)), keys, args.threads)
    wait_converged(watcher, times, keys, args.timeout, "upgrade: current release", None)
    watcher.stop()
    took = time.monotonic() - t0
    op.wait_quiet(5, 300)
    return took


def bound_args(bound: str) -> list[str]:
    """`default`: no flag, the operator's own default."""
    return [] if bound == "default" else [f"--max-operator-rollouts={bound}"]


def wait_rolled(tracker: RolloutTracker, watcher: Watcher, n: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not watcher.wait(lambda: len(tracker.done) >= n, 10):
        log(
            f"upgrade: {len(tracker.done)}/{n} rolled, {tracker.rolling} rolling now "
            f"(max {tracker.max_rolling})"
        )
        if time.monotonic() > deadline:
            raise TimeoutError(f"upgrade: only {len(tracker.done)}/{n} rolled in {timeout}s")


def per_second(series: list[tuple[float, int]], t0: float) -> list[int]:
    """Clusters rolling at once: the highest figure of each second since t0."""
    out: list[int] = []
    i, level = 0, 0
    for second in range(int(series[-1][0] - t0) + 1 if series else 0):
        peak = level
        while i < len(series) and series[i][0] - t0 < second + 1:
            level = series[i][1]
            peak = max(peak, level)
            i += 1
        out.append(peak)
    return out


def handoffs(tracker: RolloutTracker) -> list[float]:
    """For each rollout that started after another finished: the time since the last one
    finished before it (how long a freed slot stayed free)."""
    done = sorted(tracker.done.values())
    gaps = []
    for start in tracker.started.values():
        if (i := bisect.bisect_right(done, start)) > 0:
            gaps.append(start - done[i - 1])
    return gaps


def phase_figures(
    tracker: RolloutTracker, spawn: float, counts: dict[str, int], queued: int, n: int
) -> dict[str, Any]:
    per = [tracker.done[k] - tracker.started[k] for k in tracker.done]
    total = max(tracker.done.values()) - spawn
    return {
        "max_rolling": tracker.max_rolling,
        "fleet_s": r(total, 1),
        "first_rollout_after_s": r(min(tracker.started.values()) - spawn, 2),
        "seconds_per_cluster": r(total / n, 3),
        "rollout_p50_s": r(percentile(per, 50)),
        "rollout_p99_s": r(percentile(per, 99)),
        "rollout_max_s": r(max(per)),
        "handoff_p50_s": r(percentile(handoffs(tracker), 50)),
        "handoff_p99_s": r(percentile(handoffs(tracker), 99)),
        "requests_by_verb": counts,
        "requests_per_cluster": {v: round(c / n, 2) for v, c in counts.items()},
        "writes": writes(counts),
        "early_writes": sum(tracker.early_writes.values()),
        "early_written_clusters": len(tracker.early_writes),
        "reported_queued": queued,
        "rolling_per_second": per_second(tracker.series, spawn),
    }


def cpu_cores(pids: dict[str, int], before: dict[str, float], seconds: float) -> dict[str, float]:
    return {k: round((cpu_seconds(p) - before[k]) / seconds, 2) for k, p in pids.items()}


def upgrade_phase(
    kube: Kube, op: Operator, keys: list[Key], value: str, box: Sandbox, timeout: float
) -> dict[str, Any]:
    """Start the next release (`op` is set up for it); follow the fleet until every cluster
    runs `value`'s template; the operator's requests until it is quiet, and the CPU of the
    sandbox's processes (in cores) until the last rollout finished."""
    tracker, queued = RolloutTracker(value, keys), QueuedSeen()
    deployments = Watcher(kube, "Deployment", tracker.on_event, namespace_prefix=OP_PREFIX)
    clusters = Watcher(kube, "AidboxCluster", queued.on_event, namespace_prefix=OP_PREFIX)
    for watcher in (deployments, clusters):
        watcher.start()
        watcher.synced.wait(60)
    pids = sandbox_pids(box)
    before = {k: cpu_seconds(p) for k, p in pids.items()}
    try:
        tracker.arm()
        spawn = time.monotonic()
        op.start()
        wait_rolled(tracker, deployments, len(keys), timeout)
        cpu = cpu_cores(pids, before, time.monotonic() - spawn)
        op.wait_quiet(5, 300)
        counts = op.requests_by_verb()
    finally:
        op.stop()
        deployments.stop()
        clusters.stop()
    figures = phase_figures(tracker, spawn, counts, len(queued.keys), len(keys))
    return {**figures, "sandbox_cpu_cores": cpu}


def bench_upgrade(args: argparse.Namespace) -> dict[str, Any]:
    """The scenario of bench/README.md: one sandbox, the current release, then each bound."""
    n = args.operator_upgrade
    nodes = nodes_for(args.nodes, n)
    state_dir = Path(args.state_dir).with_name("upgrade")
    log(f"upgrade: N={n}, bounds {args.upgrade_bounds}; {nodes} nodes")
    box = start_sandbox(state_dir, nodes)
    kube = Kube(box.kubeconfig)
    base = [*workers_args(args.workers), *namespace_args(args.namespaces, OP_PREFIX)]
    logs = state_dir.parent
    current = Operator(box.kubeconfig, logs / "bench-operator-upgrade-current.log", base)
    out: dict[str, Any] = {"n": n, "nodes": nodes, "phases": []}
    try:
        keys = [cluster_key(i, args.namespaces, OP_PREFIX) for i in range(n)]
        out["fleet_ready_s"] = r(ready_fleet(kube, current, keys, args), 1)
        current.stop()
        for i, bound in enumerate(b.strip() for b in args.upgrade_bounds.split(",")):
            value = str(i + 1)
            op = Operator(
                box.kubeconfig,
                logs / f"bench-operator-upgrade-{value}.log",
                [*base, *bound_args(bound)],
                env={RELEASE_VARIABLE: value},
                launcher=(str(NEXT_RELEASE),),
            )
            log(f"upgrade: release {value}, --max-operator-rollouts {bound}")
            phase = {"bound": bound, "release": value}
            phase |= upgrade_phase(kube, op, keys, value, box, args.timeout)
            shown = {k: v for k, v in phase.items() if k != "rolling_per_second"}
            log(f"upgrade: {shown}")
            out["phases"].append(phase)
    finally:
        current.stop()
        kube.close()
        if not args.keep_sandbox:
            box.down()
    return out


def upgrade_markdown(out: dict[str, Any] | None) -> str:
    if not out:
        return ""
    phases = out["phases"]
    head = "| Metric | " + " | ".join(f"bound {p['bound']}" for p in phases) + " | Target |"
    lines = [
        f"Operator upgrade: {out['n']} clusters Ready under the current release, then a next "
        "release that adds a variable to every pod template.",
        "",
        head,
        "|---|" + "---|" * len(phases) + "---|",
    ]
    rows = [
        ("max_rolling", "Clusters rolling at once, max", "<= the bound"),
        ("fleet_s", "Whole fleet on the new template (s)", ""),
        ("seconds_per_cluster", "Fleet time per cluster (s)", ""),
        ("rollout_p50_s", "One cluster's rollout p50 (s)", ""),
        ("rollout_p99_s", "One cluster's rollout p99 (s)", ""),
        ("handoff_p50_s", "A freed slot taken after, p50 (s)", ""),
        ("requests_per_cluster", "Operator requests per cluster", ""),
        ("early_writes", "Changes to Deployments before their turn", "0"),
        ("sandbox_cpu_cores", "Sandbox CPU until the last rollout (cores)", ""),
        ("reported_queued", "Clusters that reported RolloutQueued", ""),
    ]
    for key, label, target in rows:
        cells = " | ".join(cell(p.get(key)) for p in phases)
        lines.append(f"| {label} | {cells} | {target} |")
    return "\n".join(lines) + "\n"
