"""One scenario's world: operator replicas (each behind its own fault proxy, each with its own
identity), the AidboxClusters they manage in a namespace of their own, and the checks every
scenario ends with: at most one writer at any time, all clusters converged, no duplicate or
orphaned objects, no change lost.

The replicas are either operator processes on this machine run as deploy/ runs them (its
ServiceAccount and RBAC, flags and environment), or deploy/'s Deployment itself, two pods on
real kubelet nodes (pods.py)."""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

import yaml
from audit import AuditLog, Request
from kubernetes import client
from kubernetes.client.rest import ApiException
from pods import NO_ELECTION, OperatorPods
from proxy import FaultProxy

from helpers import wait_for
from kube_helpers import GROUP, PLURAL, VERSION, create_cluster, make_config, patch_spec
from operator_process import OperatorProcess

REPO = Path(__file__).resolve().parents[2]
FIGURES_FILE = Path(
    os.environ.get("AIDBOX_FAULTS_FIGURES", str(REPO / "build" / "faults-figures.jsonl"))
)
LEASE_NAMESPACE = "aidbox-operator-system"  # where deploy/ grants the Lease
LEASE_NAME = "aidbox-operator"
LEASE_SECONDS = 15.0
# client-go's defaults, spelled out: the suite measures the operator as deployed.
TIMING = ("--lease-duration", "15", "--renew-deadline", "10", "--retry-period", "2")
CONVERGE_LATER_S = 60.0
MANAGED = "app.kubernetes.io/managed-by=aidbox-operator"
# FAULTS_REMOVE=guard,catch-all,... runs the replicas with those protections taken out
# (tests/faults/unprotected.py), to show that the suite catches their absence.
REMOVED = os.environ.get("FAULTS_REMOVE", "")


class Replica(Protocol):
    identity: str
    proxy: FaultProxy

    def kill(self) -> None: ...

    def metrics(self) -> dict[str, float]: ...

    def log_text(self) -> str: ...

    def log_tail(self, lines: int = 60) -> str: ...

    def stop(self) -> None: ...


class ProcessReplica:
    def __init__(self, identity: str, proxy: FaultProxy, op: OperatorProcess) -> None:
        self.identity = identity
        self.proxy = proxy
        self.op = op

    def kill(self) -> None:
        """SIGKILL, then start again with the same identity, as a container restart does."""
        assert self.op.proc is not None
        self.op.proc.send_signal(signal.SIGKILL)
        self.op.proc.wait()
        self.op.start()

    def metrics(self) -> dict[str, float]:
        return self.op.metrics()

    def log_text(self) -> str:
        return self.op.log_text()

    def log_tail(self, lines: int = 60) -> str:
        return self.op.log_tail(lines)

    def stop(self) -> None:
        self.op.stop()
        self.proxy.stop()


class Fleet:
    def __init__(
        self,
        api: client.ApiClient,
        sandbox: Any,
        credentials: Path,
        workdir: Path,
        test: str,
        pods: OperatorPods | None = None,
    ) -> None:
        self.api = api
        self.pods = pods
        self.kind = "deploy/ pods" if pods is not None else "processes"
        self.sandbox = sandbox
        self.credentials = credentials
        self.workdir = workdir
        self.slug = re.sub(r"[^a-z0-9]+", "-", test.lower()).strip("-")[:30].strip("-")
        self.namespace = f"f-{self.slug}-{secrets.token_hex(2)}"
        self.replicas: dict[str, Replica] = {}
        self.wanted: dict[str, int] = {}  # cluster -> replicas its spec asks for
        self.core = client.CoreV1Api(api)
        self.core.create_namespace(
            client.V1Namespace(metadata=client.V1ObjectMeta(name=self.namespace))
        )
        wait_for(
            lambda: self.core.read_namespaced_service_account("default", self.namespace),
            timeout=30,
            message="the namespace's default ServiceAccount",
        )
        self.audit = AuditLog(sandbox.audit_log, LEASE_NAMESPACE, LEASE_NAME)
        self.audit.read()
        self.started = time.time()

    # -- replicas ------------------------------------------------------------------------------
    def start_replicas(self, *extra: str) -> None:
        """Two replicas, one of them leading. Processes: `a` leads before `b` starts (the
        fault then hits a known leader); pods: deploy/'s Deployment as it is (`extra` flags
        are for processes only)."""
        if self.pods is None:
            self.add_replica("a", *extra)
            self.leader()
            self.add_replica("b", *extra)
            return
        for replica in self.pods.install(self.namespace):
            self.replicas[replica.identity] = replica
        self.leader(timeout=60)

    def add_replica(self, name: str, *extra: str) -> Replica:
        config = yaml.safe_load(self.credentials.read_text())
        server = config["clusters"][0]["cluster"]["server"]
        host, port = server.removeprefix("https://").rsplit(":", 1)
        proxy = FaultProxy(host, int(port))
        proxy.start()
        config["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{proxy.port}"
        kubeconfig = self.workdir / f"{name}.kubeconfig"
        kubeconfig.write_text(yaml.safe_dump(config))
        identity = f"{self.slug}-{name}"
        launcher = ("-m", "aidbox_operator")
        if REMOVED:
            launcher = (str(Path(__file__).with_name("unprotected.py")),)
        op = OperatorProcess(
            kubeconfig,
            self.workdir / f"{name}.log",
            ("--namespace", self.namespace, "--leader-elect", *TIMING, *extra),
            env={
                "POD_NAME": identity,
                "POD_NAMESPACE": LEASE_NAMESPACE,
                "FAULTS_REMOVE": REMOVED,
            },
            launcher=launcher,
        )
        op.start()
        replica = ProcessReplica(identity, proxy, op)
        self.replicas[name] = replica
        return replica

    def holder(self) -> str:
        lease = client.CoordinationV1Api(self.api).read_namespaced_lease(
            LEASE_NAME, LEASE_NAMESPACE
        )
        return str(lease.spec.holder_identity or "")

    def leader(self, timeout: float = 40) -> Replica:
        if self.pods is not None and NO_ELECTION:
            return next(iter(self.replicas.values()))  # none leads: both write
        by_identity = {r.identity: r for r in self.replicas.values()}
        found: Replica = wait_for(
            lambda: by_identity.get(self.holder()),
            timeout=timeout,
            message="one of the replicas holding the lease",
        )
        return found

    def standby(self) -> Replica:
        leader = self.leader()
        return next(r for r in self.replicas.values() if r is not leader)

    def close(self) -> None:
        if self.pods is not None:
            self.pods.uninstall()
        for replica in self.replicas.values():
            replica.stop()
        try:
            self.core.delete_namespace(self.namespace, propagation_policy="Background")
        except ApiException as exc:
            if exc.status != 404:
                raise

    # -- clusters ------------------------------------------------------------------------------
    def create_clusters(self, count: int, replicas: int = 2, threads: int = 8) -> list[str]:
        names = [f"c{i:03d}" for i in range(len(self.wanted), len(self.wanted) + count)]

        def create(name: str) -> None:
            make_config(self.api, name, self.namespace)
            create_cluster(self.api, name, self.namespace, replicas=replicas)

        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(create, names))
        self.wanted.update(dict.fromkeys(names, replicas))
        return names

    def scale(self, names: list[str], replicas: int) -> None:
        """A spec change (made during a fault: it must not be lost)."""
        for name in names:
            patch_spec(self.api, name, self.namespace, {"replicas": replicas})
            self.wanted[name] = replicas

    def not_converged(self) -> list[str]:
        """Clusters whose status does not yet report their current spec fully Ready."""
        listed = client.CustomObjectsApi(self.api).list_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL
        )
        deployments = {
            d.metadata.name: d.spec.replicas
            for d in client.AppsV1Api(self.api).list_namespaced_deployment(self.namespace).items
        }
        behind = []
        for body in listed["items"]:
            name = body["metadata"]["name"]
            status = body.get("status") or {}
            want = self.wanted.get(name, body["spec"].get("replicas"))
            if (
                status.get("observedGeneration") != body["metadata"]["generation"]
                or status.get("phase") != "Ready"
                or status.get("ready") != f"{want}/{want}"
                or deployments.get(name) != want
            ):
                behind.append(name)
        missing = set(self.wanted) - {b["metadata"]["name"] for b in listed["items"]}
        return sorted(behind) + sorted(missing)

    def wait_converged(self, timeout: float) -> float:
        """Seconds until every cluster is converged; fails naming the stuck ones."""
        started = time.monotonic()
        last: list[str] = []
        while time.monotonic() - started < timeout:
            last = self.not_converged()
            if not last:
                return time.monotonic() - started
            time.sleep(0.5)
        logs = "\n".join(f"--- {n}\n{r.log_tail(30)}" for n, r in self.replicas.items())
        raise AssertionError(
            f"{len(last)} clusters stuck {timeout:.0f}s after the fault: {last[:10]}\n"
            f"{self._describe_stuck(last[:3])}\n{logs}"
        )

    def _describe_stuck(self, names: list[str]) -> str:
        """What the API server holds for stuck clusters: their status, their Deployment's,
        their pods'."""
        lines = []
        custom, apps = client.CustomObjectsApi(self.api), client.AppsV1Api(self.api)
        for name in names:
            try:
                body = custom.get_namespaced_custom_object(
                    GROUP, VERSION, self.namespace, PLURAL, name
                )
                dep = apps.read_namespaced_deployment(name, self.namespace)
            except ApiException as exc:
                lines.append(f"{name}: {exc.status} {exc.reason}")
                continue
            status = body.get("status") or {}
            conditions = {c["type"]: c["status"] for c in status.get("conditions", [])}
            lines.append(
                f"{name}: generation {body['metadata']['generation']} status "
                f"observedGeneration={status.get('observedGeneration')} "
                f"phase={status.get('phase')} ready={status.get('ready')} {conditions}; "
                f"Deployment spec {dep.spec.replicas} ready {dep.status.ready_replicas} "
                f"observed {dep.status.observed_generation}/{dep.metadata.generation}"
            )
            pods = self.core.list_namespaced_pod(
                self.namespace, label_selector=f"app.kubernetes.io/instance={name}"
            )
            for pod in pods.items:
                ready = any(
                    c.type == "Ready" and c.status == "True" for c in pod.status.conditions or []
                )
                lines.append(
                    f"  pod {pod.metadata.name} {pod.status.phase} ready={ready} "
                    f"node={pod.spec.node_name} rv={pod.metadata.resource_version}"
                )
        return "\n".join(lines)

    def object_problems(self) -> list[str]:
        """Duplicates, orphans and missing children: every managed object is owned by a
        live cluster of this namespace, and every cluster has exactly its own children."""
        clusters = client.CustomObjectsApi(self.api).list_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL
        )["items"]
        uids = {c["metadata"]["uid"]: c["metadata"]["name"] for c in clusters}
        apps = client.AppsV1Api(self.api)
        policy = client.PolicyV1Api(self.api)
        listed = {
            "Deployment": apps.list_namespaced_deployment(self.namespace, label_selector=MANAGED),
            "Service": self.core.list_namespaced_service(self.namespace, label_selector=MANAGED),
            "PodDisruptionBudget": policy.list_namespaced_pod_disruption_budget(
                self.namespace, label_selector=MANAGED
            ),
            "Secret": self.core.list_namespaced_secret(self.namespace, label_selector=MANAGED),
        }
        problems = []
        per_cluster: dict[tuple[str, str], int] = {}
        for kind, items in listed.items():
            for obj in items.items:
                owners = [o.uid for o in obj.metadata.owner_references or []]
                owner = next((uids[u] for u in owners if u in uids), None)
                if owner is None:
                    problems.append(f"orphaned {kind} {obj.metadata.name}")
                    continue
                per_cluster[(kind, owner)] = per_cluster.get((kind, owner), 0) + 1
        for name in uids.values():
            for kind in ("Deployment", "Service", "Secret"):
                count = per_cluster.get((kind, name), 0)
                if count != 1:
                    problems.append(f"{count} {kind} for cluster {name}")
        return problems

    def answered(self, low: int, high: int = 600) -> int:
        """Requests of this scenario's replicas answered with a status code in [low, high)."""
        identities = {r.identity for r in self.replicas.values()}
        return self.audit.answered(identities, low, high)

    # -- the verdict ---------------------------------------------------------------------------
    def verdict(self, scenario: str, converge_s: float, **figures: Any) -> dict[str, Any]:
        """Read the audit log and record the scenario's figures; the caller asserts them.

        First, once any lease a cut-off leader held has run out, one more spec change: a
        replica that wrongly still believes it leads shows itself by writing alongside."""
        time.sleep(LEASE_SECONDS + 2)
        name = sorted(self.wanted)[-1]
        self.scale([name], 3 if self.wanted[name] != 3 else 2)
        later = self.wait_converged(CONVERGE_LATER_S)
        time.sleep(1.0)  # the last requests' audit lines
        timeline = self.audit.read()
        mine = [w for w in timeline.writes if w.namespace == self.namespace]
        bad = [w for w in timeline.non_leader_writes(LEASE_SECONDS, self.started) if w in mine]
        foreign = [w for w in timeline.foreign if w.namespace == self.namespace]
        row = {
            "scenario": scenario,
            "replicas": self.kind,
            "protections_removed": REMOVED
            or ("leader election (--no-leader-elect)" if self.pods and NO_ELECTION else None),
            "clusters": len(self.wanted),
            "converge_after_fault_s": round(converge_s, 1),
            "non_leader_writes": len(bad),
            "writes_by_replica": _count(mine),
            "other_writers": len(foreign),
            "leader_changes": [
                (round(t - self.started, 1), who) for t, who in timeline.holders(self.started)
            ],
            "handover_margins_s": timeline.handover_margins(self.started),
            "later_change_converge_s": round(later, 1),
            "clusters_stuck": len(self.not_converged()),
            "object_problems": self.object_problems(),
            **figures,
        }
        FIGURES_FILE.parent.mkdir(parents=True, exist_ok=True)
        with FIGURES_FILE.open("a") as fh:
            fh.write(json.dumps(row) + "\n")
        print(f"\n{scenario}: {json.dumps(row)}")
        if bad:
            print("non-leader writes:\n" + "\n".join(_describe(w, self.started) for w in bad[:20]))
        return row


def _count(writes: list[Request]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for write in writes:
        counts[write.identity] = counts.get(write.identity, 0) + 1
    return counts


def _describe(write: Request, since: float) -> str:
    return (
        f"  +{write.at - since:.2f}s {write.identity} {write.verb} {write.resource}/"
        f"{write.name} -> {write.code}"
    )


def assert_safe(row: dict[str, Any]) -> None:
    assert row["non_leader_writes"] == 0, row
    assert row["other_writers"] == 0, row
    assert row["clusters_stuck"] == 0, row
    assert row["object_problems"] == [], row
