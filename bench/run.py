"""Fleet benchmark: N AidboxClusters on the sandbox, operator vs. plain server-side apply.

    .venv/bin/python bench/run.py --sizes 100,1000 --idle-seconds 300

Writes bench/results/latest.json, latest.md and ready.png. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shlex
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

import yaml

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

from kube import Key, Kube, Watcher  # noqa: E402
from procs import Operator, cpu_seconds, diff_counts, hwm_mb, rss_mb, writes  # noqa: E402
from report import markdown, percentile, plot, r  # noqa: E402

from aidbox_operator.model import AidboxCluster  # noqa: E402
from aidbox_operator.render import render_cluster  # noqa: E402
from aidbox_sandbox import (  # noqa: E402
    ETCD_VERSION,
    KUBERNETES_VERSION,
    KWOK_VERSION,
    Sandbox,
)

T = TypeVar("T")
OP_PREFIX, BASE_PREFIX = "op-", "base-"
BASELINE_MANAGER = "bench-baseline"
SANDBOX_PROCS = ("kube-apiserver", "etcd", "kube-controller-manager", "kube-scheduler", "kwok")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def pmap(fn: Callable[[Any], T], items: Iterable[Any], threads: int) -> list[T]:
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(fn, items))


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


def sandbox_pids(box: Sandbox) -> dict[str, int]:
    data = json.loads((box.state_dir / "pids.json").read_text())
    return {p["name"]: int(p["pid"]) for p in data.get("processes", [])}


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


# ----------------------------------------------------------------------------- objects


def cluster_key(i: int, namespaces: int, prefix: str) -> Key:
    return (f"{prefix}{i % namespaces}", f"c{i:04d}")


def config_objects(ns: str, name: str) -> list[dict[str, Any]]:
    meta = {"name": name, "namespace": ns}
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": meta,
            "data": {"BOX_DB_HOST": "postgres", "BOX_WEB_BASE_URL": "http://x", "REV": "0"},
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": meta,
            "stringData": {"BOX_DB_PASSWORD": "bench", "BOX_ADMIN_PASSWORD": "bench"},
        },
    ]


def cluster_object(ns: str, name: str) -> dict[str, Any]:
    return {
        "apiVersion": "aidbox.io/v1alpha1",
        "kind": "AidboxCluster",
        "metadata": {"name": name, "namespace": ns},
        "spec": {},
    }


def cluster_ready(obj: dict[str, Any]) -> bool:
    status = obj.get("status") or {}
    if status.get("observedGeneration") != obj["metadata"].get("generation"):
        return False
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )


def deployment_ready(obj: dict[str, Any]) -> bool:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    return (
        status.get("readyReplicas", 0) == spec.get("replicas", 1)
        and status.get("observedGeneration", 0) >= obj["metadata"].get("generation", 0)
        and status.get("updatedReplicas", 0) == spec.get("replicas", 1)
    )


def install_crd(kube: Kube) -> None:
    crd = yaml.safe_load((ROOT / "crds" / "aidboxcluster.yaml").read_text())
    kube.apply(crd, "bench")
    name = crd["metadata"]["name"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        conds = (kube.get("CustomResourceDefinition", None, name).get("status") or {}).get(
            "conditions"
        ) or []
        if any(c["type"] == "Established" and c["status"] == "True" for c in conds):
            return
        time.sleep(0.2)
    raise TimeoutError("the CRD was not Established in 60s")


def make_namespaces(kube: Kube, names: list[str], threads: int) -> None:
    def one(ns: str) -> None:
        kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        deadline = time.monotonic() + 60
        while not kube.get("ServiceAccount", ns, "default"):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no default ServiceAccount in {ns}")
            time.sleep(0.2)

    pmap(one, names, threads)


def make_configs(kube: Kube, keys: list[Key], threads: int) -> None:
    def one(key: Key) -> None:
        for obj in config_objects(*key):
            kube.create(obj)

    pmap(one, keys, threads)


# ----------------------------------------------------------------------------- phases


class ReadyTimes:
    """First moment each object of a watched kind met a readiness predicate."""

    def __init__(self, ready: Callable[[dict[str, Any]], bool]) -> None:
        self.ready = ready
        self.first: dict[Key, float] = {}

    def on_event(self, etype: str, obj: dict[str, Any], t: float) -> None:
        meta = obj["metadata"]
        key = (meta["namespace"], meta["name"])
        if etype != "DELETED" and key not in self.first and self.ready(obj):
            self.first[key] = t


def wait_converged(
    watcher: Watcher, times: ReadyTimes, keys: list[Key], timeout: float, label: str, meter: Any
) -> None:
    wanted = set(keys)
    deadline = time.monotonic() + timeout
    while True:
        done = watcher.wait(lambda: wanted <= times.first.keys(), 10)
        ready = len(wanted & times.first.keys())
        extra = f"; {meter()}" if meter else ""
        if done:
            log(f"{label}: {ready}/{len(wanted)} ready")
            return
        log(f"{label}: {ready}/{len(wanted)} ready{extra}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{label}: only {ready}/{len(wanted)} ready after {timeout}s")


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
    latencies = []
    for key in keys:
        old_uid = added[key][0]
        t0 = time.monotonic()
        kube.delete("Service", *key)
        got = watcher.wait(lambda k=key, u=old_uid: k in added and added[k][0] != u, timeout)
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

    latencies = []
    for rev, key in enumerate(keys, start=1):
        with watcher.cond:
            before = owned_by(*key)
        t0 = time.monotonic()
        kube.merge_patch("ConfigMap", *key, {"data": {"REV": str(rev)}})
        new = watcher.wait(lambda k=key, b=before: owned_by(*k) - b, timeout)
        if not new:
            log(f"config rollout: no new ReplicaSet for {key} in {timeout}s")
            continue
        latencies.append(min(added[k] for k in new) - t0)
        time.sleep(0.05)
    watcher.stop()
    return latencies


def reconciles(metrics: dict[str, float]) -> float:
    return sum(v for k, v in metrics.items() if k.startswith("aidbox_operator_reconciles_total{"))


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


def audit_counts(box: Sandbox, t_from: float, t_to: float) -> dict[str, int]:
    """API requests of the operator (kopf and its own client) seen by the API server's audit
    log between two wall-clock times: "agent verb resource" -> count."""
    counts: Counter[str] = Counter()
    start = datetime.fromtimestamp(t_from, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
    end = datetime.fromtimestamp(t_to, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
    for path in sorted(box.state_dir.glob("audit*.log")):
        with path.open() as fh:
            for line in fh:
                try:
                    ev = json.loads(line)
                except ValueError:
                    continue
                agent = (ev.get("userAgent") or "").split("/")[0]
                if agent.startswith(("kube-", "kwok", "aidbox-bench")) or not agent:
                    continue
                stamp = ev.get("stageTimestamp", "")[:26]
                if not (start <= stamp <= end) or ev.get("stage") != "ResponseComplete":
                    continue
                ref = ev.get("objectRef") or {}
                res = ref.get("resource", ev.get("requestURI", "?"))
                if ref.get("subresource"):
                    res += "/" + ref["subresource"]
                counts[f"{agent} {ev.get('verb')} {res}"] += 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


# ----------------------------------------------------------------------------- one size


def bench_size(n: int, args: argparse.Namespace, profile: bool) -> tuple[dict[str, Any], Any]:
    nodes = max(args.nodes, math.ceil(4.4 * n / 1100) + 1)
    box = Sandbox(state_dir=Path(args.state_dir), nodes=nodes)
    log(f"N={n}: sandbox with {nodes} nodes in {box.state_dir}")
    box.up(progress=lambda m: log(f"sandbox: {m}"))
    kube = Kube(box.kubeconfig)
    op: Operator | None = None
    run: dict[str, Any] = {"n": n, "namespaces": args.namespaces, "nodes": nodes}
    series: dict[str, list[float]] = {}
    try:
        install_crd(kube)
        op_ns = [f"{OP_PREFIX}{i}" for i in range(args.namespaces)]
        base_ns = [f"{BASE_PREFIX}{i}" for i in range(args.namespaces)]
        make_namespaces(kube, op_ns + base_ns, args.threads)
        op_keys = [cluster_key(i, args.namespaces, OP_PREFIX) for i in range(n)]
        base_keys = [cluster_key(i, args.namespaces, BASE_PREFIX) for i in range(n)]
        pids = sandbox_pids(box)

        # 2. baseline: rendered manifests, server-side applied, no operator running
        make_configs(kube, base_keys, args.threads)
        meter = CpuMeter({k: pids[k] for k in SANDBOX_PROCS if k in pids})
        meter.start()
        base = run_baseline(kube, base_keys, args)
        run["baseline_cpu_cores"] = meter.stop()
        run["baseline_s"] = r(base["total_s"])
        run["baseline_ready_p50_s"] = r(base["p50"])
        run["baseline_ready_p99_s"] = r(base["p99"])
        series["baseline (SSA of rendered manifests)"] = base["per_cluster"]

        # 4a. the operator with no clusters
        log_path = Path(args.state_dir).parent / f"bench-operator-{n}.log"
        ns_args = [a for ns in op_ns for a in ("-n", ns)]
        op = Operator(box.kubeconfig, log_path, ["--workers", str(args.workers), *ns_args])
        op.start()
        op.wait_quiet(3, 60)
        run["rss_idle_mb"] = r(rss_mb(op.pid), 1)
        before = op.requests_by_verb()

        # 1. convergence
        times = ReadyTimes(cluster_ready)
        watcher = Watcher(kube, "AidboxCluster", times.on_event, namespace_prefix=OP_PREFIX)
        watcher.start()
        watcher.synced.wait(60)
        make_configs(kube, op_keys, args.threads)
        meter = CpuMeter({"operator": op.pid, **{k: pids[k] for k in SANDBOX_PROCS if k in pids}})
        profile_path = Path(args.state_dir).parent / f"profile-{n}.txt"
        profiler = Profiler(op.pid, profile_path) if profile else None
        created: dict[Key, float] = {}
        wall0 = time.time()

        def create_one(key: Key) -> None:
            t0 = time.monotonic()
            kube.create(cluster_object(*key))
            created[key] = t0

        log(f"operator: creating {n} AidboxClusters")
        meter.start()
        pmap(create_one, op_keys, args.threads)
        log(f"operator: all created in {time.monotonic() - min(created.values()):.1f}s")
        wait_converged(
            watcher,
            times,
            op_keys,
            args.timeout,
            "operator",
            lambda: f"queue {op.metrics().get('aidbox_operator_queue_depth')}",
        )
        cpu = meter.stop()
        if profiler is not None:
            run["profile_top"] = profiler.stop()
        conv = summarize(created, times.first)
        run["operator_s"] = r(conv["total_s"])
        run["convergence_ratio"] = r(conv["total_s"] / base["total_s"])
        run["ready_p50_s"] = r(conv["p50"])
        run["ready_p90_s"] = r(conv["p90"])
        run["ready_p99_s"] = r(conv["p99"])
        run["burst_cpu_cores"] = cpu
        run["operator_cpu_cores_burst"] = cpu["operator"]
        run["apiserver_cpu_cores_burst"] = cpu.get("kube-apiserver")
        series["operator"] = conv["per_cluster"]

        # 3. requests: the burst (until quiet), then idle
        op.wait_quiet(5, 300)
        wall2 = time.time()
        burst = diff_counts(op.requests_by_verb(), before)
        run["requests_by_verb"] = burst
        run["requests_per_cluster"] = {v: round(c / n, 2) for v, c in burst.items()}
        run["burst_quiet_after_s"] = r(wall2 - wall0, 1)
        rss_converged = rss_mb(op.pid)
        log(f"burst requests {burst}; RSS {rss_converged:.1f} MB; idle {args.idle_seconds}s")
        idle0 = op.requests_by_verb()
        time.sleep(args.idle_seconds)
        idle = diff_counts(op.requests_by_verb(), idle0)
        wall3 = time.time()
        run["idle_seconds"] = args.idle_seconds
        run["idle_requests_by_verb"] = idle
        run["idle_writes"] = writes(idle)

        # 4b. memory with N clusters, after the idle window (steady state)
        run["rss_loaded_mb"] = r(rss_mb(op.pid), 1)
        run["rss_converged_mb"] = r(rss_converged, 1)
        run["rss_peak_mb"] = r(hwm_mb(op.pid), 1)
        run["rss_per_cluster_kb"] = r((run["rss_loaded_mb"] - run["rss_idle_mb"]) * 1024 / n, 1)

        # 5. drift repair and config rollout
        samples = sample_keys(op_keys, args.samples)
        log(f"drift repair: deleting {len(samples)} Services one at a time")
        drift = drift_repair(kube, samples)
        run["drift_samples"] = len(drift)
        run["drift_repair_p50_s"] = r(percentile(drift, 50))
        run["drift_repair_p99_s"] = r(percentile(drift, 99))
        log(f"config rollout: changing {len(samples)} ConfigMaps one at a time")
        rollout = config_rollout(kube, samples)
        run["config_rollout_samples"] = len(rollout)
        run["config_rollout_p50_s"] = r(percentile(rollout, 50))
        run["config_rollout_p99_s"] = r(percentile(rollout, 99))

        # 6. restart with N clusters present, once everything is Ready again
        wanted = set(op_keys)
        watcher.wait(
            lambda: all(k in watcher.objects and cluster_ready(watcher.objects[k]) for k in wanted),
            args.timeout,
        )
        op.wait_quiet(3, 120)
        log("restart: restarting the operator")
        wall4 = time.time()
        run["restart_s"], restart_counts = restart(op, n, args.timeout)
        run["restart_s"] = r(run["restart_s"])
        run["restart_requests_by_verb"] = restart_counts
        run["restart_writes"] = writes(restart_counts)
        wall5 = time.time()
        watcher.stop()
        run["audit_burst"] = audit_counts(box, wall0, wall2)
        run["audit_idle"] = audit_counts(box, wall2 + 1, wall3)
        run["audit_restart"] = audit_counts(box, wall4, wall5)
        log(f"N={n} done: {json.dumps({k: v for k, v in run.items() if 'audit' not in k})}")
    finally:
        if op is not None:
            op.stop()
        kube.close()
        if not args.keep_sandbox:
            box.down()
    return run, series


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="100,1000", help="comma-separated N (default 100,1000)")
    parser.add_argument("--idle-seconds", type=float, default=300)
    parser.add_argument("--namespaces", type=int, default=10)
    parser.add_argument("--workers", type=int, default=8, help="operator --workers")
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
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    args.out.mkdir(parents=True, exist_ok=True)
    Path(args.state_dir).parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    results: dict[str, Any] = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": shlex.join(["bench/run.py", *(sys.argv[1:] if argv is None else argv)]),
        "machine": machine_facts(),
        "versions": versions(),
        "settings": {
            k: v for k, v in vars(args).items() if k not in ("out", "state_dir", "keep_sandbox")
        },
        "runs": [],
    }
    series: dict[int, dict[str, list[float]]] = {}
    latest = args.out / "latest.json"
    if not sizes and latest.exists():
        # Only the surroundings scenario: keep the fleet figures of the last full run.
        previous = json.loads(latest.read_text())
        results["runs"] = previous.get("runs", [])
        results["fleet_from"] = {k: previous.get(k) for k in ("started", "command", "versions")}
    if args.surroundings:
        from surroundings import bench_surroundings

        sub = argparse.Namespace(**{**vars(args), "keep_sandbox": args.keep_sandbox and not sizes})
        results["surroundings"] = bench_surroundings(sub)
        latest.write_text(json.dumps(results, indent=2) + "\n")
    for i, n in enumerate(sizes):
        keep = args.keep_sandbox and i == len(sizes) - 1
        sub = argparse.Namespace(**{**vars(args), "keep_sandbox": keep})
        run, series[n] = bench_size(n, sub, profile=not args.no_profile and n == max(sizes))
        results["runs"].append(run)
        results["total_s"] = round(time.monotonic() - started, 1)
        (args.out / "latest.json").write_text(json.dumps(results, indent=2) + "\n")
    results["total_s"] = round(time.monotonic() - started, 1)
    latest.write_text(json.dumps(results, indent=2) + "\n")
    table = markdown(results)
    (args.out / "latest.md").write_text(table)
    if series:
        plot(series, args.out / "ready.png")
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
