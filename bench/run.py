"""Fleet benchmark: N AidboxClusters on the sandbox, operator vs. plain server-side apply.

    .venv/bin/python bench/run.py --sizes 100,1000 --idle-seconds 300

Writes bench/results/latest.json, latest.md and ready.png. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

from channel import bench_channel, channel_markdown  # noqa: E402
from kube import Key, Kube, Watcher  # noqa: E402
from plots import with_links, write_plots  # noqa: E402
from procs import (  # noqa: E402
    Operator,
    audit_counts,
    cpu_seconds,
    diff_counts,
    hwm_mb,
    reconciles,
    rss_mb,
    sandbox_pids,
    workers_args,
    writes,
)
from report import markdown, percentile, plot, r  # noqa: E402
from surroundings import bench_surroundings  # noqa: E402
from upgrade import bench_upgrade, upgrade_markdown  # noqa: E402
from workload import (  # noqa: E402
    BASE_PREFIX,
    OP_PREFIX,
    ReadyTimes,
    cluster_key,
    cluster_object,
    cluster_ready,
    deployment_ready,
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

from aidbox_operator.model import AidboxCluster  # noqa: E402
from aidbox_operator.render import render_cluster  # noqa: E402
from aidbox_operator.runtime.workers import DEFAULT_WORKERS  # noqa: E402
from aidbox_sandbox import (  # noqa: E402
    ETCD_VERSION,
    KUBERNETES_VERSION,
    KWOK_VERSION,
    Sandbox,
)

BASELINE_MANAGER = "bench-baseline"
SANDBOX_PROCS = ("kube-apiserver", "etcd", "kube-controller-manager", "kube-scheduler", "kwok")


# ----------------------------------------------------------------------------- facts


def machine_facts() -> dict[str, Any]:
    mem_kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])
    model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return {
        "cores": os.cpu_count(),
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "cpu_model": model,
        "platform": platform.platform(),
        "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def versions() -> dict[str, Any]:
    out: dict[str, Any] = {"python": platform.python_version()}
    for dist in ("aidbox-operator", "kopf", "kubernetes"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "?"
    out["kube"] = KUBERNETES_VERSION
    out["etcd"] = ETCD_VERSION
    out["kwok"] = KWOK_VERSION
    try:
        out["git"] = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        # The operator runs from the working tree: note uncommitted changes under src/.
        out["git_dirty_src"] = subprocess.run(
            ["git", "status", "--porcelain", "src"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()[1::2]
    except (OSError, subprocess.CalledProcessError):
        out["git"] = "?"
    return out


class CpuMeter:
    """CPU seconds used by a set of processes between start() and stop()."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.before: dict[str, float] = {}
        self.t0 = 0.0

    def start(self) -> None:
        self.before = {k: cpu_seconds(p) for k, p in self.pids.items()}
        self.t0 = time.monotonic()

    def stop(self) -> dict[str, float]:
        wall = max(time.monotonic() - self.t0, 1e-9)
        return {k: round((cpu_seconds(p) - self.before[k]) / wall, 2) for k, p in self.pids.items()}


# ----------------------------------------------------------------------------- measurements


def summarize(created: dict[Key, float], ready: dict[Key, float]) -> dict[str, Any]:
    per = [ready[k] - created[k] for k in created]
    total = max(ready[k] for k in created) - min(created.values())
    return {
        "total_s": total,
        "per_cluster": per,
        "p50": percentile(per, 50),
        "p90": percentile(per, 90),
        "p99": percentile(per, 99),
        "max": max(per),
    }


def run_baseline(kube: Kube, keys: list[Key], args: argparse.Namespace) -> dict[str, Any]:
    times = ReadyTimes(deployment_ready)
    watcher = Watcher(kube, "Deployment", times.on_event, namespace_prefix=BASE_PREFIX)
    watcher.start()
    watcher.synced.wait(60)
    created: dict[Key, float] = {}

    def apply_one(key: Key) -> None:
        ns, name = key
        t0 = time.monotonic()
        cluster = AidboxCluster.model_validate(
            {"metadata": {"name": name, "namespace": ns}, "spec": {}}
        )
        for manifest in render_cluster(cluster):  # what `aidbox-operator render` prints
            kube.apply(manifest, BASELINE_MANAGER)
        created[key] = t0

    log(f"baseline: server-side applying {len(keys)} clusters' manifests")
    pmap(apply_one, keys, args.threads)
    log(f"baseline: all applied in {time.monotonic() - min(created.values()):.1f}s")
    wait_converged(watcher, times, keys, args.timeout, "baseline", None)
    watcher.stop()
    return summarize(created, times.first)


def sample_keys(keys: list[Key], count: int) -> list[Key]:
    count = min(count, len(keys))
    step = len(keys) / count
    return [keys[int(i * step)] for i in range(count)]


def drift_repair(kube: Kube, keys: list[Key], timeout: float = 30) -> list[float]:
    added: dict[Key, tuple[str, float]] = {}

    def on_event(etype: str, obj: dict[str, Any], t: float) -> None:
        if etype == "ADDED":
            meta = obj["metadata"]
            added[(meta["namespace"], meta["name"])] = (meta["uid"], t)

    watcher = Watcher(kube, "Service", on_event, namespace_prefix=OP_PREFIX)
    watcher.start()
    watcher.synced.wait(60)
    latencies: list[float] = []
    for key in keys:
        old_uid = added[key][0]
        t0 = time.monotonic()
        kube.delete("Service", *key)

        def recreated(k: Key = key, u: str = old_uid) -> bool:
            return k in added and added[k][0] != u

        got = watcher.wait(recreated, timeout)
        if not got:
            log(f"drift: Service {key} not recreated in {timeout}s")
            continue
        latencies.append(added[key][1] - t0)
        time.sleep(0.05)
    watcher.stop()
    return latencies


def config_rollout(kube: Kube, keys: list[Key], timeout: float = 30) -> list[float]:
    added: dict[Key, float] = {}

    def on_event(etype: str, obj: dict[str, Any], t: float) -> None:
        if etype == "ADDED":
            added.setdefault((obj["metadata"]["namespace"], obj["metadata"]["name"]), t)

    watcher = Watcher(kube, "ReplicaSet", on_event, namespace_prefix=OP_PREFIX)
    watcher.start()
    watcher.synced.wait(60)

    def owned_by(ns: str, name: str) -> set[Key]:
        return {
            k
            for k, obj in watcher.objects.items()
            if k[0] == ns
            and any(o.get("name") == name for o in obj["metadata"].get("ownerReferences", []))
        }

    latencies: list[float] = []
    for rev, key in enumerate(keys, start=1):
        with watcher.cond:
            before = owned_by(*key)
        t0 = time.monotonic()
        kube.merge_patch("ConfigMap", *key, {"data": {"REV": str(rev)}})

        def new_replicasets(k: Key = key, b: set[Key] = before) -> set[Key]:
            return owned_by(*k) - b

        new = watcher.wait(new_replicasets, timeout)
        if not new:
            log(f"config rollout: no new ReplicaSet for {key} in {timeout}s")
            continue
        latencies.append(min(added[k] for k in new) - t0)
        time.sleep(0.05)
    watcher.stop()
    return latencies


def restart(op: Operator, n: int, timeout: float) -> tuple[float, dict[str, int]]:
    """Restart the operator; time until every cluster was reconciled and the queue is empty."""
    op.stop()
    t0 = time.monotonic()
    op.start(wait_healthy=False)
    deadline = t0 + timeout
    while True:
        metrics = op.try_metrics()
        if (
            metrics
            and reconciles(metrics) >= n
            and metrics.get("aidbox_operator_queue_depth", 1) == 0
        ):
            took = time.monotonic() - t0
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"restart: not in sync after {timeout}s")
        time.sleep(0.1)
    op.wait_quiet(5, 120)
    return took, op.requests_by_verb()


class Profiler:
    """py-spy record (raw collapsed stacks) of the operator, if py-spy is installed."""

    def __init__(self, pid: int, out: Path) -> None:
        exe = Path(sys.executable).with_name("py-spy")
        self.out = out
        self.proc = None
        if exe.exists():
            cmd = [str(exe), "record", "--pid", str(pid), "--rate", "50", "--nonblocking"]
            self.proc = subprocess.Popen(
                [*cmd, "--format", "raw", "-o", str(out)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        else:
            log("py-spy not installed: no profile")

    def stop(self) -> list[tuple[str, int]]:
        if self.proc is None:
            return []
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        return top_frames(self.out)


def top_frames(raw: Path, limit: int = 25) -> list[tuple[str, int]]:
    """Inclusive sample counts per function from py-spy's collapsed stacks."""
    inclusive: Counter[str] = Counter()
    total = 0
    try:
        lines = raw.read_text().splitlines()
    except OSError:
        return []
    for line in lines:
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        total += int(count)
        for frame in set(stack.split(";")):
            inclusive[frame] += int(count)
    return [("(total samples)", total), *inclusive.most_common(limit)]


# ----------------------------------------------------------------------------- one size N


@dataclass
class Fleet:
    """One size N on its own sandbox: what its phases share, and the figures so far."""

    n: int
    args: argparse.Namespace
    box: Sandbox
    kube: Kube
    op: Operator
    run: dict[str, Any]
    op_keys: list[Key] = field(default_factory=list)
    base_keys: list[Key] = field(default_factory=list)
    pids: dict[str, int] = field(default_factory=dict)
    series: dict[str, list[float]] = field(default_factory=dict)
    baseline_total_s: float = 0.0
    requests_before: dict[str, int] = field(default_factory=dict)
    times: ReadyTimes = field(default_factory=lambda: ReadyTimes(cluster_ready))
    rss_converged_mb: float = 0.0
    # time.time() at the phases' edges, to cut the API server's audit log
    wall: dict[str, float] = field(default_factory=dict)
    watcher: Watcher = field(init=False)  # AidboxClusters, from the burst to the restart

    def __post_init__(self) -> None:
        self.watcher = Watcher(
            self.kube, "AidboxCluster", self.times.on_event, namespace_prefix=OP_PREFIX
        )

    def sandbox_procs(self) -> dict[str, int]:
        return {k: self.pids[k] for k in SANDBOX_PROCS if k in self.pids}


def set_up(fleet: Fleet) -> None:
    """The CRD and the namespaces (`op-*` for the operator, `base-*` for the baseline)."""
    args = fleet.args
    install_crd(fleet.kube)
    op_ns = [f"{OP_PREFIX}{i}" for i in range(args.namespaces)]
    base_ns = [f"{BASE_PREFIX}{i}" for i in range(args.namespaces)]
    make_namespaces(fleet.kube, op_ns + base_ns, args.threads)
    fleet.op_keys = [cluster_key(i, args.namespaces, OP_PREFIX) for i in range(fleet.n)]
    fleet.base_keys = [cluster_key(i, args.namespaces, BASE_PREFIX) for i in range(fleet.n)]
    fleet.pids = sandbox_pids(fleet.box)


def phase_baseline(fleet: Fleet) -> None:
    """1. The rendered manifests of every cluster server-side applied, no operator running."""
    make_configs(fleet.kube, fleet.base_keys, fleet.args.threads)
    meter = CpuMeter(fleet.sandbox_procs())
    meter.start()
    base = run_baseline(fleet.kube, fleet.base_keys, fleet.args)
    run = fleet.run
    run["baseline_cpu_cores"] = meter.stop()
    run["baseline_s"] = r(base["total_s"])
    run["baseline_ready_p50_s"] = r(base["p50"])
    run["baseline_ready_p99_s"] = r(base["p99"])
    fleet.series["baseline (SSA of rendered manifests)"] = base["per_cluster"]
    fleet.baseline_total_s = base["total_s"]


def phase_operator_start(fleet: Fleet) -> None:
    """2. The operator with no clusters: its RSS once it is quiet."""
    fleet.op.start()
    fleet.op.wait_quiet(3, 60)
    fleet.run["rss_idle_mb"] = r(rss_mb(fleet.op.pid), 1)
    fleet.requests_before = fleet.op.requests_by_verb()


def phase_burst(fleet: Fleet, profile: bool) -> None:
    """3. The clusters' ConfigMaps and Secrets, then the N AidboxClusters; until all Ready."""
    kube, op, args = fleet.kube, fleet.op, fleet.args
    fleet.watcher.start()
    fleet.watcher.synced.wait(60)
    make_configs(kube, fleet.op_keys, args.threads)
    meter = CpuMeter({"operator": op.pid, **fleet.sandbox_procs()})
    profile_path = Path(args.state_dir).parent / f"profile-{fleet.n}.txt"
    profiler = Profiler(op.pid, profile_path) if profile else None
    created: dict[Key, float] = {}
    fleet.wall["burst"] = time.time()

    def create_one(key: Key) -> None:
        t0 = time.monotonic()
        kube.create(cluster_object(*key))
        created[key] = t0

    def queue() -> str:
        return f"queue {op.metrics().get('aidbox_operator_queue_depth')}"

    log(f"operator: creating {fleet.n} AidboxClusters")
    meter.start()
    pmap(create_one, fleet.op_keys, args.threads)
    log(f"operator: all created in {time.monotonic() - min(created.values()):.1f}s")
    wait_converged(fleet.watcher, fleet.times, fleet.op_keys, args.timeout, "operator", queue)
    cpu = meter.stop()
    if profiler is not None:
        fleet.run["profile_top"] = profiler.stop()
    record_convergence(fleet, summarize(created, fleet.times.first), cpu)
    record_burst_requests(fleet)


def record_convergence(fleet: Fleet, conv: dict[str, Any], cpu: dict[str, float]) -> None:
    run = fleet.run
    run["operator_s"] = r(conv["total_s"])
    run["convergence_ratio"] = r(conv["total_s"] / fleet.baseline_total_s)
    run["ready_p50_s"] = r(conv["p50"])
    run["ready_p90_s"] = r(conv["p90"])
    run["ready_p99_s"] = r(conv["p99"])
    run["burst_cpu_cores"] = cpu
    run["operator_cpu_cores_burst"] = cpu["operator"]
    run["apiserver_cpu_cores_burst"] = cpu.get("kube-apiserver")
    fleet.series["operator"] = conv["per_cluster"]


def record_burst_requests(fleet: Fleet) -> None:
    """The burst's requests count until the operator has been quiet for 5 s."""
    op, run, n = fleet.op, fleet.run, fleet.n
    op.wait_quiet(5, 300)
    fleet.wall["quiet"] = time.time()
    burst = diff_counts(op.requests_by_verb(), fleet.requests_before)
    run["requests_by_verb"] = burst
    run["requests_per_cluster"] = {v: round(c / n, 2) for v, c in burst.items()}
    run["burst_quiet_after_s"] = r(fleet.wall["quiet"] - fleet.wall["burst"], 1)
    fleet.rss_converged_mb = rss_mb(op.pid)
    log(
        f"burst requests {burst}; RSS {fleet.rss_converged_mb:.1f} MB; "
        f"idle {fleet.args.idle_seconds}s"
    )


def phase_idle_window(fleet: Fleet) -> None:
    """4. `--idle-seconds` of nothing: the requests made meanwhile, then the steady RSS."""
    op, run = fleet.op, fleet.run
    idle0 = op.requests_by_verb()
    time.sleep(fleet.args.idle_seconds)
    idle = diff_counts(op.requests_by_verb(), idle0)
    fleet.wall["idle_end"] = time.time()
    run["idle_seconds"] = fleet.args.idle_seconds
    run["idle_requests_by_verb"] = idle
    run["idle_writes"] = writes(idle)
    run["rss_loaded_mb"] = r(rss_mb(op.pid), 1)
    run["rss_converged_mb"] = r(fleet.rss_converged_mb, 1)
    run["rss_peak_mb"] = r(hwm_mb(op.pid), 1)
    run["rss_per_cluster_kb"] = r((run["rss_loaded_mb"] - run["rss_idle_mb"]) * 1024 / fleet.n, 1)


def phase_drift_and_rollout(fleet: Fleet) -> None:
    """5. Drift repair, then config rollout, on the same `--samples` clusters one at a time."""
    run = fleet.run
    samples = sample_keys(fleet.op_keys, fleet.args.samples)
    log(f"drift repair: deleting {len(samples)} Services one at a time")
    drift = drift_repair(fleet.kube, samples)
    run["drift_samples"] = len(drift)
    run["drift_repair_p50_s"] = r(percentile(drift, 50))
    run["drift_repair_p99_s"] = r(percentile(drift, 99))
    log(f"config rollout: changing {len(samples)} ConfigMaps one at a time")
    rollout = config_rollout(fleet.kube, samples)
    run["config_rollout_samples"] = len(rollout)
    run["config_rollout_p50_s"] = r(percentile(rollout, 50))
    run["config_rollout_p99_s"] = r(percentile(rollout, 99))


def phase_restart(fleet: Fleet) -> None:
    """6. Once every cluster is Ready again and the operator quiet: restart it."""
    watcher, op, run, timeout = fleet.watcher, fleet.op, fleet.run, fleet.args.timeout
    wanted = set(fleet.op_keys)
    watcher.wait(
        lambda: all(k in watcher.objects and cluster_ready(watcher.objects[k]) for k in wanted),
        timeout,
    )
    op.wait_quiet(3, 120)
    log("restart: restarting the operator")
    fleet.wall["restart"] = time.time()
    took, counts = restart(op, fleet.n, timeout)
    run["restart_s"] = r(took)
    run["restart_requests_by_verb"] = counts
    run["restart_writes"] = writes(counts)
    fleet.wall["restart_end"] = time.time()
    watcher.stop()


def record_audit(fleet: Fleet) -> None:
    """The operator's requests in the API server's audit log: burst, idle window, restart."""
    box, wall = fleet.box, fleet.wall
    fleet.run["audit_burst"] = audit_counts(box, wall["burst"], wall["quiet"])
    fleet.run["audit_idle"] = audit_counts(box, wall["quiet"] + 1, wall["idle_end"])
    fleet.run["audit_restart"] = audit_counts(box, wall["restart"], wall["restart_end"])


def bench_size(
    n: int, args: argparse.Namespace, profile: bool
) -> tuple[dict[str, Any], dict[str, list[float]]]:
    """One size N on a fresh sandbox, the phases of bench/README.md in order."""
    nodes = nodes_for(args.nodes, n)
    log(f"N={n}: sandbox with {nodes} nodes in {args.state_dir}")
    box = start_sandbox(Path(args.state_dir), nodes)
    log_path = Path(args.state_dir).parent / f"bench-operator-{n}.log"
    ns_args = namespace_args(args.namespaces, OP_PREFIX)
    op = Operator(box.kubeconfig, log_path, [*workers_args(args.workers), *ns_args])
    run: dict[str, Any] = {"n": n, "namespaces": args.namespaces, "nodes": nodes}
    fleet = Fleet(n, args, box, Kube(box.kubeconfig), op, run)
    try:
        set_up(fleet)
        phase_baseline(fleet)
        phase_operator_start(fleet)
        phase_burst(fleet, profile)
        phase_idle_window(fleet)
        phase_drift_and_rollout(fleet)
        phase_restart(fleet)
        record_audit(fleet)
        log(f"N={n} done: {json.dumps({k: v for k, v in run.items() if 'audit' not in k})}")
    finally:
        op.stop()
        fleet.kube.close()
        if not args.keep_sandbox:
            box.down()
    return run, fleet.series


# ----------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--sizes", default="100,1000", help="comma-separated N (default 100,1000)")
    parser.add_argument("--idle-seconds", type=float, default=300)
    parser.add_argument("--namespaces", type=int, default=10)
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help=f"operator --workers (default: not passed, the operator's own, {DEFAULT_WORKERS})",
    )
    parser.add_argument("--threads", type=int, default=16, help="client threads for creates")
    parser.add_argument("--samples", type=int, default=100, help="drift/rollout samples")
    parser.add_argument("--nodes", type=int, default=4, help="minimum simulated nodes")
    parser.add_argument("--timeout", type=float, default=1800, help="per-phase timeout (s)")
    parser.add_argument("--state-dir", default="/tmp/sbx-bench/sandbox")
    parser.add_argument("--keep-sandbox", action="store_true", help="leave the last one up")
    parser.add_argument("--no-profile", action="store_true", help="no py-spy on the largest N")
    parser.add_argument("--out", type=Path, default=BENCH / "results")
    parser.add_argument(
        "--surroundings",
        type=int,
        default=0,
        help="unrelated Secrets, ConfigMaps and Pods (each) for the surroundings scenario",
    )
    parser.add_argument("--surroundings-clusters", type=int, default=100)
    parser.add_argument("--settle-seconds", type=float, default=30, help="before steady RSS")
    parser.add_argument(
        "--operator-upgrade",
        type=int,
        default=0,
        metavar="N",
        help="the operator-upgrade scenario with N clusters (default 0: skip)",
    )
    parser.add_argument(
        "--upgrade-bounds",
        default="default,0",
        help="--max-operator-rollouts of each upgrade phase ('default': not passed)",
    )
    add_channel_args(parser)
    return parser.parse_args(argv)


def add_channel_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--channel",
        type=int,
        default=0,
        metavar="N",
        help="the release-channel scenario with N clusters (default 0: skip)",
    )
    parser.add_argument(
        "--channel-waves",
        default="5,25",
        help="percent of N in each wave but the last, which takes the rest (default 5,25: "
        "three waves, canary 5%%, staging 25%%, prod 70%%)",
    )
    parser.add_argument(
        "--channel-soak", type=int, default=10, help="soakSeconds of each wave but the last (10)"
    )
    parser.add_argument(
        "--channel-concurrency",
        type=int,
        default=0,
        help="maxConcurrent of every wave (default 0: the whole wave, at most 1000)",
    )


def new_results(args: argparse.Namespace, argv: list[str] | None) -> dict[str, Any]:
    """The run's header: command, machine, versions, settings (with the workers used)."""
    settings = {
        k: v for k, v in vars(args).items() if k not in ("out", "state_dir", "keep_sandbox")
    }
    if settings["workers"] is None:
        settings["workers"] = DEFAULT_WORKERS
    return {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": shlex.join(["bench/run.py", *(sys.argv[1:] if argv is None else argv)]),
        "machine": machine_facts(),
        "versions": versions(),
        "settings": settings,
        "runs": [],
    }


def write_json(path: Path, results: dict[str, Any]) -> None:
    path.write_text(json.dumps(results, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    args.out.mkdir(parents=True, exist_ok=True)
    Path(args.state_dir).parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    results = new_results(args, argv)
    series: dict[int, dict[str, list[float]]] = {}
    latest = args.out / "latest.json"
    if not sizes and latest.exists():
        # Only the surroundings scenario: keep the fleet figures of the last full run.
        previous = json.loads(latest.read_text())
        results["runs"] = previous.get("runs", [])
        results["fleet_from"] = {k: previous.get(k) for k in ("started", "command", "versions")}
    if args.surroundings:
        sub = argparse.Namespace(**{**vars(args), "keep_sandbox": args.keep_sandbox and not sizes})
        results["surroundings"] = bench_surroundings(sub)
        write_json(latest, results)
    if args.operator_upgrade:
        sub = argparse.Namespace(**{**vars(args), "keep_sandbox": args.keep_sandbox and not sizes})
        results["operator_upgrade"] = bench_upgrade(sub)
        write_json(latest, results)
    if args.channel:
        sub = argparse.Namespace(**{**vars(args), "keep_sandbox": args.keep_sandbox and not sizes})
        results["channel"] = bench_channel(sub)
        write_json(latest, results)
    for i, n in enumerate(sizes):
        keep = args.keep_sandbox and i == len(sizes) - 1
        sub = argparse.Namespace(**{**vars(args), "keep_sandbox": keep})
        run, series[n] = bench_size(n, sub, profile=not args.no_profile and n == max(sizes))
        results["runs"].append(run)
        results["total_s"] = round(time.monotonic() - started, 1)
        write_json(latest, results)
    results["total_s"] = round(time.monotonic() - started, 1)
    write_json(latest, results)
    table = "\n".join(
        part
        for part in (
            markdown(results),
            upgrade_markdown(results.get("operator_upgrade")),
            channel_markdown(results.get("channel")),
        )
        if part
    )
    # The table first: a plot that fails to draw must not cost a long run its table.
    (args.out / "latest.md").write_text(table)
    pngs = write_plots(results, args.out, "latest")
    (args.out / "latest.md").write_text(with_links(table, pngs))
    if series:
        plot(series, args.out / "ready.png")
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
