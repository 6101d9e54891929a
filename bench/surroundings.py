"""The "surroundings" scenario: what unrelated objects elsewhere in the cluster cost the operator.

Next to C AidboxClusters (default 100), U Secrets of ~130 KB (the size of Helm release
Secrets), U ConfigMaps of ~50 KB and a Deployment of U pods (on the kwok nodes) are created in
a namespace of their own. The operator runs cluster-wide (`--all-namespaces`, the default
install), the hardest case: it is told about every ConfigMap and Secret of the cluster.
Measured in one sandbox and one run, before and after the unrelated objects exist:

- RSS at steady state, RSS 30 s after a restart and the peak RSS (VmHWM) of those 30 s;
- operator and kube-apiserver CPU seconds while the unrelated objects are created (from the
  first create until the filler pods are Ready and the operator made no request for 3 s);
- bytes received from the API server: the operator's client counter
  (`aidbox_operator_api_received_bytes_total`: response bodies of its own requests and
  watches), and the TCP bytes received on all of the process's connections to the API server
  (`ss`, sampled every 0.2 s: TLS included, kopf's AidboxCluster watch included; a connection
  that opens and closes between two samples is missed).
"""

from __future__ import annotations

import argparse
import base64
import os
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from kube import Key, Kube, Watcher
from procs import (
    Operator,
    cpu_seconds,
    diff_counts,
    hwm_mb,
    reconciles,
    rss_mb,
    sandbox_pids,
    wait_until,
    workers_args,
    writes,
)
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
    nodes_for,
    pmap,
    start_sandbox,
    wait_converged,
)

from aidbox_sandbox import Sandbox
from aidbox_sandbox.operator import received_since, tcp_received

NAMESPACE = "surroundings"
# Helm stores a release as base64(base64(gzip(json))) in data.release: ~130 KB in the Secret.
SECRET_RANDOM_BYTES = 73 * 1024
CONFIGMAP_BYTES = 50 * 1024
RECEIVED = "aidbox_operator_api_received_bytes_total"


def helm_like_secret(i: int) -> dict[str, Any]:
    release = base64.b64encode(os.urandom(SECRET_RANDOM_BYTES))
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "helm.sh/release.v1",
        "metadata": {
            "name": f"sh.helm.release.v1.app{i:05d}.v1",
            "namespace": NAMESPACE,
            "labels": {
                "owner": "helm",
                "name": f"app{i:05d}",
                "status": "deployed",
                "version": "1",
            },
        },
        "data": {"release": base64.b64encode(release).decode()},
    }


def configmap(i: int) -> dict[str, Any]:
    text = base64.b64encode(os.urandom(CONFIGMAP_BYTES * 3 // 4)).decode()
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": f"settings-{i:05d}", "namespace": NAMESPACE},
        "data": {"settings.json": text},
    }


def filler_deployment(replicas: int) -> dict[str, Any]:
    labels = {"app": "filler"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "filler", "namespace": NAMESPACE},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "app", "image": "example.com/app:1"}]},
            },
        },
    }


class TcpSampler(threading.Thread):
    """`tcp_received` every 0.2 s, keeping each connection's last count: pooled connections
    idle for 15 s are closed by the client, and their bytes would be lost at the end."""

    def __init__(self, pid: int, port: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.port = port
        self.before = tcp_received(pid, port)
        self.seen: dict[str, int] = {}
        self.stopping = False

    def run(self) -> None:
        while not self.stopping:
            self.seen.update(tcp_received(self.pid, self.port))
            time.sleep(0.2)

    def stop(self) -> int:
        self.stopping = True
        self.join()
        self.seen.update(tcp_received(self.pid, self.port))
        return received_since(self.before, self.seen)


def restart_figures(op: Operator, clusters: int, timeout: float, port: int) -> dict[str, Any]:
    """Restart; RSS 30 s after the spawn and the peak of those 30 s; time until in sync."""
    op.stop()
    t0 = time.monotonic()
    op.start(wait_healthy=False)
    sampler = TcpSampler(op.pid, port)
    sampler.start()
    in_sync = None
    while time.monotonic() - t0 < 30:
        metrics = op.try_metrics()
        if (
            in_sync is None
            and metrics
            and reconciles(metrics) >= clusters
            and metrics.get("aidbox_operator_queue_depth", 1) == 0
        ):
            in_sync = time.monotonic() - t0
        time.sleep(0.1)
    figures: dict[str, Any] = {
        "rss_30s_mb": round(rss_mb(op.pid), 1),
        "rss_peak_mb": round(hwm_mb(op.pid), 1),
        "in_sync_s": None if in_sync is None else round(in_sync, 2),
        "received_bytes": int(op.metrics().get(RECEIVED, 0)),
        "tcp_received_bytes": sampler.stop(),
    }
    if in_sync is None:
        wait_until(lambda: reconciles(op.metrics()) >= clusters, timeout, "restart in sync")
        figures["in_sync_s"] = round(time.monotonic() - t0, 2)
    op.wait_quiet(3, timeout)
    figures["requests_by_verb"] = op.requests_by_verb()
    figures["writes"] = writes(figures["requests_by_verb"])
    return figures


def create_unrelated(kube: Kube, count: int, threads: int, timeout: float) -> None:
    pmap(lambda i: kube.create(helm_like_secret(i)), range(count), threads)
    log(f"surroundings: {count} Secrets created")
    pmap(lambda i: kube.create(configmap(i)), range(count), threads)
    log(f"surroundings: {count} ConfigMaps created")
    kube.create(filler_deployment(count))
    deadline = time.monotonic() + timeout
    while True:
        status = kube.get("Deployment", NAMESPACE, "filler").get("status") or {}
        if status.get("readyReplicas", 0) >= count:
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"filler pods: {status.get('readyReplicas', 0)}/{count} Ready")
        time.sleep(2)
    log(f"surroundings: {count} pods Ready")


def settle(op: Operator, seconds: float) -> float:
    op.wait_quiet(3, 300)
    time.sleep(seconds)
    return round(rss_mb(op.pid), 1)


def start_with_clusters(
    kube: Kube, op: Operator, keys: list[Key], args: argparse.Namespace
) -> None:
    """Step 1: the CRD, namespaces, the clusters' ConfigMaps and Secrets, the operator, then
    the clusters; returns once every cluster is Ready and the operator is quiet."""
    install_crd(kube)
    op_ns = [f"{OP_PREFIX}{i}" for i in range(args.namespaces)]
    make_namespaces(kube, [*op_ns, NAMESPACE], args.threads)
    make_configs(kube, keys, args.threads)
    op.start()
    times = ReadyTimes(cluster_ready)
    watcher = Watcher(kube, "AidboxCluster", times.on_event, namespace_prefix=OP_PREFIX)
    watcher.start()
    watcher.synced.wait(60)
    pmap(lambda k: kube.create(cluster_object(*k)), keys, args.threads)
    wait_converged(watcher, times, keys, args.timeout, "surroundings clusters", None)
    watcher.stop()
    op.wait_quiet(5, 300)


def creation_window(
    box: Sandbox, kube: Kube, op: Operator, port: int, args: argparse.Namespace
) -> dict[str, Any]:
    """Step 3: create the unrelated objects; what the operator and kube-apiserver spent."""
    apiserver = sandbox_pids(box)["kube-apiserver"]
    tcp = TcpSampler(op.pid, port)
    tcp.start()
    before = (cpu_seconds(op.pid), cpu_seconds(apiserver), op.metrics())
    t0 = time.monotonic()
    create_unrelated(kube, args.surroundings, args.threads, args.timeout)
    op.wait_quiet(3, 300)
    window: dict[str, Any] = {
        "seconds": round(time.monotonic() - t0, 1),
        "operator_cpu_s": round(cpu_seconds(op.pid) - before[0], 2),
        "apiserver_cpu_s": round(cpu_seconds(apiserver) - before[1], 2),
        "received_bytes": int(op.metrics().get(RECEIVED, 0) - before[2].get(RECEIVED, 0)),
        "tcp_received_bytes": tcp.stop(),
        "requests_by_verb": diff_counts(op.requests_by_verb(), op.requests_by_verb(before[2])),
    }
    window["operator_vs_apiserver_cpu_pct"] = round(
        100 * window["operator_cpu_s"] / max(window["apiserver_cpu_s"], 1e-9), 2
    )
    log(f"surroundings: creation window {window}")
    return window


def bench_surroundings(args: argparse.Namespace) -> dict[str, Any]:
    """The scenario in the order of bench/README.md; one sandbox, one operator process."""
    count, clusters = args.surroundings, args.surroundings_clusters
    nodes = nodes_for(args.nodes, clusters, other_pods=count)
    state_dir = Path(args.state_dir).with_name("surroundings")
    log(f"surroundings: U={count} next to {clusters} clusters; {nodes} nodes")
    box = start_sandbox(state_dir, nodes)
    kube = Kube(box.kubeconfig)
    port = urlparse(kube.host).port or 443
    log_path = state_dir.parent / "bench-operator-surroundings.log"
    op = Operator(box.kubeconfig, log_path, [*workers_args(args.workers), "-A"])
    out: dict[str, Any] = {"unrelated_each": count, "clusters": clusters, "nodes": nodes}
    try:
        keys = [cluster_key(i, args.namespaces, OP_PREFIX) for i in range(clusters)]
        start_with_clusters(kube, op, keys, args)
        log("surroundings: restart without unrelated objects")
        out["without"] = restart_figures(op, clusters, args.timeout, port)
        out["without"]["rss_steady_mb"] = settle(op, args.settle_seconds)
        out["creation_window"] = creation_window(box, kube, op, port, args)
        rss_with = settle(op, args.settle_seconds)
        log("surroundings: restart with unrelated objects")
        out["with"] = restart_figures(op, clusters, args.timeout, port)
        out["with"]["rss_steady_mb"] = rss_with
        out["with"]["rss_steady_after_restart_mb"] = settle(op, args.settle_seconds)
        for key in ("rss_steady_mb", "rss_30s_mb", "rss_peak_mb"):
            out[f"delta_{key}"] = round(out["with"][key] - out["without"][key], 1)
        log(f"surroundings done: {out}")
    finally:
        op.stop()
        kube.close()
        if not args.keep_sandbox:
            box.down()
    return out
