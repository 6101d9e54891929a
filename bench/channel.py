"""The channel fleet scenario (`--channel N`): N AidboxClusters on one AidboxReleaseChannel,
labelled into waves (by default canary 5 %, staging 25 %, prod the rest), Ready on release A;
then the channel moves to release B and a watch of the Deployments, the AidboxClusters and the
channel follows it wave by wave until every cluster runs B and is Ready.

A cluster is done with the move when its Deployment is complete on B's template (every replica
updated, available and ready) and the AidboxCluster reports Ready for its current generation
with `status.image` B. A wave starts when the channel's status names it (or a later wave, or
`Complete`) for image B. Before its wave starts a Deployment must not change at all: any new
resourceVersion of it after the move whose revision is older than its wave's start (both are
etcd revisions, ordered across objects) is an early change.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from kube import Key, Kube, Watcher, key_of
from procs import (
    Operator,
    audit_counts,
    audit_events,
    audit_resource,
    cpu_seconds,
    diff_counts,
    sandbox_pids,
    workers_args,
)
from procs import writes as write_count
from report import cell, percentile, r
from upgrade import cpu_cores, rollout_done
from workload import (
    OP_PREFIX,
    cluster_key,
    cluster_ready,
    install_crd,
    log,
    make_configs,
    make_namespaces,
    nodes_for,
    pmap,
    start_sandbox,
)

from aidbox_sandbox import Sandbox

CHANNEL = "bench"
REPO = "healthsamurai/aidboxone"
RELEASE_A, RELEASE_B = f"{REPO}:2510.1", f"{REPO}:2510.2"
TIER = "tier"
# The channel's limit on a wave's maxConcurrent (model/channel.py).
MAX_CONCURRENT = 1000


# ----------------------------------------------------------------------------- objects


def wave_names(count: int) -> list[str]:
    """canary, staging, prod for three waves; canary, staging1..k, prod for more."""
    if count == 1:
        return ["prod"]
    middle = ["staging"] if count == 3 else [f"staging{i}" for i in range(1, count - 1)]
    return ["canary", *middle, "prod"]


def wave_sizes(n: int, shares: str) -> list[int]:
    """Clusters per wave: each share (percent of N) rounded, at least one; the last wave takes
    the rest (at least one)."""
    sizes = [max(1, round(n * float(s) / 100)) for s in shares.split(",") if s.strip()]
    if sum(sizes) >= n:
        raise ValueError(f"--channel-waves {shares} leaves no cluster of {n} for the last wave")
    return [*sizes, n - sum(sizes)]


def channel_object(image: str, names: list[str], sizes: list[int], args: Any) -> dict[str, Any]:
    """Every wave picks its tier label; each soaks `--channel-soak` s but the last (a soak
    after the last wave only delays `Complete`)."""
    waves = []
    for i, (name, size) in enumerate(zip(names, sizes, strict=True)):
        wanted = args.channel_concurrency or size
        waves.append(
            {
                "name": name,
                "matchLabels": {TIER: name},
                "maxConcurrent": min(wanted, MAX_CONCURRENT),
                "soakSeconds": 0 if i == len(names) - 1 else int(args.channel_soak),
            }
        )
    return {
        "apiVersion": "aidbox.io/v1alpha1",
        "kind": "AidboxReleaseChannel",
        "metadata": {"name": CHANNEL},
        "spec": {"image": image, "waves": waves},
    }


def channel_cluster(key: Key, tier: str) -> dict[str, Any]:
    ns, name = key
    return {
        "apiVersion": "aidbox.io/v1alpha1",
        "kind": "AidboxCluster",
        "metadata": {"name": name, "namespace": ns, "labels": {TIER: tier}},
        "spec": {"channel": CHANNEL},
    }


def template_image(deployment: dict[str, Any]) -> str:
    containers = deployment["spec"]["template"]["spec"].get("containers") or [{}]
    return str(containers[0].get("image", ""))


def started_waves(status: dict[str, Any], names: list[str]) -> int:
    """How many waves a channel status shows started (all of them once Complete)."""
    if status.get("phase") == "Complete":
        return len(names)
    current = status.get("currentWave", "")
    return names.index(current) + 1 if current in names else 0


# ----------------------------------------------------------------------------- tracking


class MoveTracker:
    """Events of the three watches in; per cluster, when it became Ready on A, when its
    Deployment first had B's template and was complete on it, when it was Ready on B; per wave,
    when the channel started it; every change to a Deployment after the move."""

    def __init__(self, wave_of: dict[Key, int], names: list[str]) -> None:
        self.wave_of = wave_of
        self.names = names
        self.moved_at: float | None = None
        self.ready_a: dict[Key, float] = {}
        self.ready_b: dict[Key, float] = {}
        self.template_b: dict[Key, float] = {}
        self.complete_b: dict[Key, float] = {}
        self.versions: dict[Key, str] = {}
        self.changes: list[tuple[Key, int, float]] = []  # (cluster, revision, time) after the move
        self.wave_start: dict[int, tuple[float, int]] = {}  # wave -> (time, channel revision)
        self.channel_complete: dict[str, float] = {}  # image -> first time Complete on it
        self.max_moving = [0] * len(names)

    def arm(self) -> None:
        self.moved_at = time.monotonic()

    def on_deployment(self, etype: str, obj: dict[str, Any], t: float) -> None:
        key = key_of(obj)
        if key not in self.wave_of or etype == "DELETED":
            return
        version = obj["metadata"]["resourceVersion"]
        changed = self.versions.get(key) not in (None, version)
        self.versions[key] = version
        if self.moved_at is None:
            return
        if changed:
            self.changes.append((key, int(version), t))
        if template_image(obj) == RELEASE_B:
            self.template_b.setdefault(key, t)
            if rollout_done(obj):
                self.complete_b.setdefault(key, t)
        wave = self.wave_of[key]
        self.max_moving[wave] = max(self.max_moving[wave], self.moving(wave))

    def moving(self, wave: int) -> int:
        """Clusters of the wave whose Deployment has B's template and is not complete yet."""
        return sum(1 for k in self.template_b if self.wave_of[k] == wave) - sum(
            1 for k in self.complete_b if self.wave_of[k] == wave
        )

    def on_cluster(self, etype: str, obj: dict[str, Any], t: float) -> None:
        key = key_of(obj)
        if key not in self.wave_of or etype == "DELETED" or not cluster_ready(obj):
            return
        image = (obj.get("status") or {}).get("image")
        if image == RELEASE_A:
            self.ready_a.setdefault(key, t)
        elif image == RELEASE_B and self.moved_at is not None:
            self.ready_b.setdefault(key, t)

    def on_channel(self, etype: str, obj: dict[str, Any], t: float) -> None:
        status = obj.get("status") or {}
        if etype == "DELETED" or obj["metadata"]["name"] != CHANNEL or not status.get("image"):
            return
        if status.get("phase") == "Complete":
            self.channel_complete.setdefault(status["image"], t)
        if self.moved_at is None or status["image"] != RELEASE_B:
            return
        revision = int(obj["metadata"]["resourceVersion"])
        for wave in range(started_waves(status, self.names)):
            self.wave_start.setdefault(wave, (t, revision))

    def done(self, key: Key) -> float | None:
        """When the cluster both ran B complete and reported Ready on it."""
        if key in self.complete_b and key in self.ready_b:
            return max(self.complete_b[key], self.ready_b[key])
        return None

    def done_by_wave(self, wave: int) -> float | None:
        """When the last cluster of the wave was done (None while one is not)."""
        done = [self.done(k) for k, w in self.wave_of.items() if w == wave]
        return None if None in done else max(d for d in done if d is not None)

    def all_done(self) -> bool:
        return RELEASE_B in self.channel_complete and all(
            self.done(k) is not None for k in self.wave_of
        )

    def early(self) -> dict[Key, int]:
        """Changes per cluster to Deployments older (by revision) than their wave's start; a
        change while the wave's start was never seen counts too."""
        found: dict[Key, int] = {}
        for key, revision, _ in self.changes:
            start = self.wave_start.get(self.wave_of[key])
            if start is None or revision < start[1]:
                found[key] = found.get(key, 0) + 1
        return found


# ----------------------------------------------------------------------------- phases


class Watches:
    """The scenario's three watches (Deployments and AidboxClusters of the `op-*` namespaces,
    the channels), all feeding one tracker, from before the first cluster to the end."""

    def __init__(self, kube: Kube, tracker: MoveTracker) -> None:
        self.deployments = Watcher(
            kube, "Deployment", tracker.on_deployment, namespace_prefix=OP_PREFIX
        )
        self.clusters = Watcher(
            kube, "AidboxCluster", tracker.on_cluster, namespace_prefix=OP_PREFIX
        )
        self.channels = Watcher(kube, "AidboxReleaseChannel", tracker.on_channel)
        self.all = (self.deployments, self.clusters, self.channels)

    def start(self) -> None:
        for watcher in self.all:
            watcher.start()
            watcher.synced.wait(60)

    def stop(self) -> None:
        for watcher in self.all:
            watcher.stop()

    def wait(self, label: str, predicate: Any, meter: Any, timeout: float) -> None:
        """Until predicate() holds; logs meter() every 10 s. Events wake the AidboxCluster
        watch's waiters; the others are seen within a second (Watcher.wait polls)."""
        deadline = time.monotonic() + timeout
        while not self.clusters.wait(predicate, 10):
            log(f"{label}: {meter()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{label}: not done in {timeout}s: {meter()}")
        log(f"{label}: {meter()}")


def set_up(kube: Kube, keys: list[Key], args: argparse.Namespace) -> None:
    """Both CRDs, the namespaces and every cluster's ConfigMap and Secret."""
    install_crd(kube)
    install_crd(kube, "aidboxreleasechannel.yaml")
    make_namespaces(kube, [f"{OP_PREFIX}{i}" for i in range(args.namespaces)], args.threads)
    make_configs(kube, keys, args.threads)


def ready_on_a(
    kube: Kube, watches: Watches, tracker: MoveTracker, tiers: dict[Key, str], args: Any
) -> float:
    """The channel on release A, then the N clusters on it; until every cluster is Ready on A
    and the channel Complete on A. Returns the seconds since the first cluster create."""
    sizes = [list(tracker.wave_of.values()).count(i) for i in range(len(tracker.names))]
    kube.create(channel_object(RELEASE_A, tracker.names, sizes, args))
    t0 = time.monotonic()
    pmap(lambda k: kube.create(channel_cluster(k, tiers[k])), list(tiers), args.threads)
    n = len(tiers)

    def ready() -> bool:
        return len(tracker.ready_a) >= n and RELEASE_A in tracker.channel_complete

    def meter() -> str:
        return f"{len(tracker.ready_a)}/{n} Ready on A"

    watches.wait("channel: release A", ready, meter, args.timeout)
    return time.monotonic() - t0


def move(
    kube: Kube, box: Sandbox, op: Operator, watches: Watches, tracker: MoveTracker, timeout: float
) -> dict[str, Any]:
    """Move the channel to B; until every cluster is done and the channel Complete on B, then
    until the operator is quiet. Returns the requests, the audit log and CPU of the move."""
    box_pids = {"operator": op.pid, **sandbox_pids(box)}
    before_cpu = {k: cpu_seconds(p) for k, p in box_pids.items()}
    before = op.requests_by_verb()
    wall = time.time()
    tracker.arm()
    kube.merge_patch("AidboxReleaseChannel", None, CHANNEL, {"spec": {"image": RELEASE_B}})
    n = len(tracker.wave_of)

    def meter() -> str:
        done = sum(1 for k in tracker.wave_of if tracker.done(k) is not None)
        started = len(tracker.wave_start)
        return f"{done}/{n} on B and Ready, {started}/{len(tracker.names)} waves started"

    watches.wait("channel: move to B", tracker.all_done, meter, timeout)
    assert tracker.moved_at is not None
    cpu = cpu_cores(box_pids, before_cpu, time.monotonic() - tracker.moved_at)
    op.wait_quiet(5, 300)
    counts = diff_counts(op.requests_by_verb(), before)
    end = time.time()
    return {
        "requests_by_verb": counts,
        "audit": audit_counts(box, wall, end),
        "audit_by_cluster": audit_by_cluster(box, wall, end, tracker.wave_of),
        "cpu_cores": cpu,
    }


def audit_by_cluster(
    box: Sandbox, t_from: float, t_to: float, clusters: dict[Key, int]
) -> dict[Key | None, dict[str, int]]:
    """The operator's requests in the audit log by the cluster they are about ("verb
    resource" -> count): the AidboxCluster, its children (named like it, or `<name>-...`) and
    its Events (`<name>.<suffix>`), which the scenario's names (`cNNNN`) tell apart; None for
    the rest (the channel's status, Events without a name in the log, lists, watches)."""
    found: dict[Key | None, dict[str, int]] = {}
    for _, ev in audit_events(box, t_from, t_to):
        ref = ev.get("objectRef") or {}
        name = str(ref.get("name") or "").split(".")[0]
        key: Key | None = (str(ref.get("namespace") or ""), name.split("-")[0])
        if key not in clusters:
            key = None
        what = f"{ev.get('verb')} {audit_resource(ev)}"
        counts = found.setdefault(key, {})
        counts[what] = counts.get(what, 0) + 1
    return found


# ----------------------------------------------------------------------------- figures


def per_cluster(audit: dict[Key | None, dict[str, int]], keys: list[Key]) -> dict[str, float]:
    """The audit log's requests about these clusters, per cluster, by "verb resource"."""
    total: dict[str, int] = {}
    for key in keys:
        for what, count in audit.get(key, {}).items():
            total[what] = total.get(what, 0) + count
    return {what: round(c / len(keys), 2) for what, c in sorted(total.items())}


def wave_figures(
    tracker: MoveTracker, wave: int, early: dict[Key, int], audit: dict[Key | None, dict[str, int]]
) -> dict[str, Any]:
    """One wave's times since the move, its clusters' rollouts, the operator's requests about
    them and its early changes."""
    moved = tracker.moved_at
    assert moved is not None
    keys = [k for k, w in tracker.wave_of.items() if w == wave]
    done = [d for k in keys if (d := tracker.done(k)) is not None]
    firsts = [tracker.template_b[k] for k in keys if k in tracker.template_b]
    per = [tracker.complete_b[k] - tracker.template_b[k] for k in keys if k in tracker.complete_b]
    start = tracker.wave_start.get(wave, (None, 0))[0]
    before = tracker.done_by_wave(wave - 1) if wave else None
    last = max(done) if len(done) == len(keys) else None
    return {
        "name": tracker.names[wave],
        "clusters": len(keys),
        "started_s": r(start - moved, 2) if start is not None else None,
        "first_change_s": r(min(firsts) - moved, 2) if firsts else None,
        "done_s": r(last - moved, 2) if last is not None else None,
        "wave_s": r(last - start, 2) if last is not None and start is not None else None,
        "wait_before_s": r(start - before, 2) if start is not None and before is not None else None,
        "rollout_p50_s": r(percentile(per, 50), 2),
        "rollout_max_s": r(max(per), 2) if per else None,
        "audit_per_cluster": per_cluster(audit, keys),
        "max_moving": tracker.max_moving[wave],
        "early_changes": sum(early.get(k, 0) for k in keys),
        "early_changed_clusters": sum(1 for k in keys if k in early),
    }


def move_figures(tracker: MoveTracker, moved: dict[str, Any], n: int) -> dict[str, Any]:
    assert tracker.moved_at is not None
    early = tracker.early()
    counts, audit = moved["requests_by_verb"], moved["audit"]
    by_verb: dict[str, int] = {}
    for key, count in audit.items():
        verb = key.split()[1]
        by_verb[verb] = by_verb.get(verb, 0) + count
    last = max(d for k in tracker.wave_of if (d := tracker.done(k)) is not None)
    return {
        "waves": [
            wave_figures(tracker, w, early, moved["audit_by_cluster"])
            for w in range(len(tracker.names))
        ],
        "total_s": r(last - tracker.moved_at, 2),
        "channel_complete_s": r(tracker.channel_complete[RELEASE_B] - tracker.moved_at, 2),
        "early_changed_clusters": len(early),
        "early_changes": sum(early.values()),
        "early_clusters": sorted(f"{k[0]}/{k[1]}" for k in early),
        "requests_by_verb": counts,
        "requests_per_cluster": {v: round(c / n, 2) for v, c in counts.items()},
        "writes": write_count(counts),
        "audit_by_verb": dict(sorted(by_verb.items())),
        "audit_per_cluster_by_verb": {v: round(c / n, 2) for v, c in sorted(by_verb.items())},
        "audit_per_cluster": per_cluster(moved["audit_by_cluster"], list(tracker.wave_of)),
        "audit": audit,
        "audit_not_per_cluster": moved["audit_by_cluster"].get(None, {}),
        "cpu_cores": moved["cpu_cores"],
    }


def bench_channel(args: argparse.Namespace) -> dict[str, Any]:
    """The scenario of bench/README.md: one sandbox, N clusters Ready on A, the move to B."""
    n = args.channel
    nodes = nodes_for(args.nodes, n)
    sizes = wave_sizes(n, args.channel_waves)
    names = wave_names(len(sizes))
    keys = [cluster_key(i, args.namespaces, OP_PREFIX) for i in range(n)]
    # Waves take consecutive clusters, which the namespaces' round-robin spreads out.
    wave_of = dict(zip(keys, [w for w, s in enumerate(sizes) for _ in range(s)], strict=True))
    state_dir = Path(args.state_dir).with_name("channel")
    log(f"channel: N={n}, waves {dict(zip(names, sizes, strict=True))}; {nodes} nodes")
    box = start_sandbox(state_dir, nodes)
    kube = Kube(box.kubeconfig)
    # No -n: the operator watches all namespaces, so it handles release channels (auto).
    op = Operator(
        box.kubeconfig, state_dir.parent / "bench-operator-channel.log", workers_args(args.workers)
    )
    tracker = MoveTracker(wave_of, names)
    watches = Watches(kube, tracker)
    out: dict[str, Any] = {"n": n, "nodes": nodes, "namespaces": args.namespaces}
    out |= {"from": RELEASE_A, "to": RELEASE_B, "soak_seconds": args.channel_soak}
    try:
        set_up(kube, keys, args)
        op.start()
        watches.start()
        tiers = {k: names[w] for k, w in wave_of.items()}
        out["fleet_ready_s"] = r(ready_on_a(kube, watches, tracker, tiers, args), 1)
        op.wait_quiet(5, 300)
        spec = kube.get("AidboxReleaseChannel", None, CHANNEL)["spec"]
        out["max_concurrent"] = [w["maxConcurrent"] for w in spec["waves"]]
        log(f"channel: moving {CHANNEL} to {RELEASE_B}")
        moved = move(kube, box, op, watches, tracker, args.timeout)
        out |= move_figures(tracker, moved, n)
        log(f"channel: { {k: v for k, v in out.items() if k != 'audit'} }")
    finally:
        watches.stop()
        op.stop()
        kube.close()
        if not args.keep_sandbox:
            box.down()
    return out


# ----------------------------------------------------------------------------- table

# (key of a wave, label, target); the fleet column shows the same key of the whole move
WAVE_ROWS: list[tuple[str, str, str]] = [
    ("clusters", "Clusters", ""),
    ("started_s", "Wave started, since the move (s)", ""),
    ("first_change_s", "First Deployment on B, since the move (s)", ""),
    ("done_s", "Every cluster on B and Ready, since the move (s)", ""),
    ("wave_s", "Wave start to its last cluster Ready (s)", ""),
    ("wait_before_s", "Previous wave done to this start (soak) (s)", ""),
    ("rollout_p50_s", "One Deployment's rollout p50 (s)", ""),
    ("audit_per_cluster", "Audit log: requests per cluster of the wave", ""),
    ("max_moving", "Clusters moving at once, max", "<= maxConcurrent"),
    ("early_changed_clusters", "Deployments changed before their wave", "0"),
]


def channel_markdown(out: dict[str, Any] | None) -> str:
    if not out:
        return ""
    waves = out["waves"]
    fleet = {
        "clusters": out["n"],
        "done_s": out["total_s"],
        "audit_per_cluster": out["audit_per_cluster"],
        "early_changed_clusters": out["early_changed_clusters"],
    }
    lines = [
        f"Release channel: {out['n']} clusters on one channel, Ready on {out['from']}; the "
        f"channel moves to {out['to']} (soak {out['soak_seconds']} s, maxConcurrent "
        f"{'/'.join(str(c) for c in out['max_concurrent'])}).",
        "",
        "| Metric | " + " | ".join(w["name"] for w in waves) + " | All | Target |",
        "|---|" + "---|" * len(waves) + "---|---|",
    ]
    for key, label, target in WAVE_ROWS:
        cells = " | ".join(cell(w.get(key)) for w in waves)
        lines.append(f"| {label} | {cells} | {cell(fleet.get(key))} | {target} |")
    blank = " | " * len(waves)
    for key, label in (
        ("channel_complete_s", "Channel Complete on B, since the move (s)"),
        ("requests_per_cluster", "Operator requests per cluster"),
        ("audit_per_cluster_by_verb", "Audit log: all operator requests per cluster"),
        ("writes", "Operator writes"),
    ):
        lines.append(f"| {label} |{blank}{cell(out.get(key))} |  |")
    return "\n".join(lines) + "\n"
