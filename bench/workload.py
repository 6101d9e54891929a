"""What both scenarios put on the sandbox and how they wait for it: the CRD, namespaces, the
clusters with their ConfigMap and Secret, readiness predicates and the time each object became
ready. Shared by run.py (the fleet) and the other scenarios; imports none of them."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import yaml
from kube import Key, Kube, Watcher

from aidbox_sandbox import Sandbox

ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")
OP_PREFIX, BASE_PREFIX = "op-", "base-"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def pmap(fn: Callable[[Any], T], items: Iterable[Any], threads: int) -> list[T]:
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(fn, items))


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
    return bool(
        status.get("readyReplicas", 0) == spec.get("replicas", 1)
        and status.get("observedGeneration", 0) >= obj["metadata"].get("generation", 0)
        and status.get("updatedReplicas", 0) == spec.get("replicas", 1)
    )


# ----------------------------------------------------------------------------- set-up


def install_crd(kube: Kube, file: str = "aidboxcluster.yaml") -> None:
    """A CRD of crds/ (by default AidboxCluster's), server-side applied, until Established."""
    crd = yaml.safe_load((ROOT / "crds" / file).read_text())
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
    raise TimeoutError(f"the CRD {name} was not Established in 60s")


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


# ----------------------------------------------------------------------------- readiness


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
    watcher: Watcher,
    times: ReadyTimes,
    keys: list[Key],
    timeout: float,
    label: str,
    meter: Callable[[], str] | None,
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


# kwok nodes take up to 1,100 pods each; a cluster has 2 pods, more while it rolls.
PODS_PER_NODE = 1100
PODS_PER_CLUSTER = 4.4


def nodes_for(minimum: int, clusters: int, other_pods: int = 0) -> int:
    """Simulated nodes enough for `clusters` clusters (rollouts included) and other pods."""
    pods = PODS_PER_CLUSTER * clusters + other_pods
    return max(minimum, math.ceil(pods / PODS_PER_NODE) + 1)


def start_sandbox(state_dir: Path, nodes: int) -> Sandbox:
    """A fresh sandbox for one scenario, its progress in the benchmark's log."""
    box = Sandbox(state_dir=state_dir, nodes=nodes)
    box.up(progress=lambda m: log(f"sandbox: {m}"))
    return box


def namespace_args(namespaces: int, prefix: str) -> list[str]:
    """The operator's -n flags for the benchmark's namespaces."""
    return [a for i in range(namespaces) for a in ("-n", f"{prefix}{i}")]
