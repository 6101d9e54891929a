"""The control plane: a real Kubernetes control plane on 127.0.0.1 with kwok-simulated nodes.

Processes (each in its own session/process group, PIDs in <state>/pids.json):
etcd (data on tmpfs), kube-apiserver (TLS, Node+RBAC authorization, default admission
plugins, audit log), kube-controller-manager (all default controllers), kube-scheduler and the
kwok controller (plays the kubelets of the simulated nodes).

This module knows nothing of real kubelet nodes; the orchestrator (sandbox.py) passes what
they need from the API server as extra flags to `ControlPlane.start`.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import hashlib
import json
import os
import shutil
import signal
import ssl
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from . import build, pki
from .errors import PortBusyError, SandboxError
from .files import tail
from .kubeapi import LOOPBACK, KubeApi, free_port, http_ok, https_ok, kubeconfig_dict
from .nodehost import proc_start_time
from .pki import PkiPaths

NOT_READY_LABEL = "sandbox.aidbox.io/not-ready"
NODE_LABEL_SELECTOR = "type=kwok"
ZONE_LABEL = "topology.kubernetes.io/zone"
ZONES = ("zone-a", "zone-b", "zone-c")
# Pods per node is the limit that counts: cpu and memory fit 1,100 pods at the Aidbox
# container's default requests (500m, 2Gi), so a fleet benchmark is not short of them.
NODE_CAPACITY = {"cpu": "640", "memory": "2560Gi", "pods": "1100"}
POD_CIDR = "10.244.0.0/16"

Progress = Callable[[str], None]

# Components in start order; down() stops them in reverse.
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
# The ports chosen at start; all must differ.
PORTS = ("etcd", "etcd-peer", "kube-apiserver", "kube-controller-manager", "kube-scheduler")


@dataclass(frozen=True)
class ProcessStatus:
    name: str
    pid: int
    alive: bool
    rss_mb: float = 0.0


@dataclass(frozen=True)
class SandboxStatus:
    running: bool
    processes: list[ProcessStatus] = field(default_factory=list)
    api_server_url: str | None = None
    kubeconfig: Path | None = None
    rss_mb: float = 0.0


# ---------------------------------------------------------------- /proc helpers


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def choose_ports() -> dict[str, int]:
    """A free port on 127.0.0.1 for each of PORTS, all different."""
    ports: dict[str, int] = {}
    while len(set(ports.values())) < len(PORTS):
        ports = {name: free_port() for name in PORTS}
    return ports


# ---------------------------------------------------------------- files written for a run


# A Stage that differs from another only in when and for which pods it applies names that other
# Stage here instead of repeating its long status template.
NEXT_AS_ANNOTATION = "sandbox.aidbox.io/next-as"


def stage_documents() -> list[dict[str, Any]]:
    """The kwok Stage objects shipped in sandbox/stages/*.yaml, each `next` filled in."""
    folder = resources.files("aidbox_sandbox").joinpath("stages")
    docs: list[dict[str, Any]] = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".yaml"):
            docs += [d for d in yaml.safe_load_all(entry.read_text()) if d]
    by_name = {d["metadata"]["name"]: d for d in docs}
    for doc in docs:
        source = (doc["metadata"].get("annotations") or {}).get(NEXT_AS_ANNOTATION)
        if source:
            # A copy: a shared dict would be dumped as a YAML alias.
            doc["spec"]["next"] = copy.deepcopy(by_name[source]["spec"]["next"])
    return docs


AUDIT_POLICY: dict[str, Any] = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived"],
    "rules": [{"level": "Metadata"}],
}


def node_manifest(index: int) -> dict[str, Any]:
    name = f"sandbox-node-{index}"
    ip = f"10.240.{index // 250}.{index % 250 + 1}"
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "type": "kwok",
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "node-role.kubernetes.io/sandbox": "",
                ZONE_LABEL: ZONES[index % len(ZONES)],
                "topology.kubernetes.io/region": "sandbox",
            },
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
        },
        "spec": {},
        "status": {
            "capacity": dict(NODE_CAPACITY),
            "allocatable": dict(NODE_CAPACITY),
            "addresses": [
                {"type": "InternalIP", "address": ip},
                {"type": "Hostname", "address": name},
            ],
        },
    }


def _node_ready_and_untainted(node: dict[str, Any]) -> bool:
    conds = {c.get("type"): c.get("status") for c in node["status"].get("conditions", [])}
    if conds.get("Ready") != "True":
        return False
    return not any(
        t.get("key", "").startswith("node.kubernetes.io/") for t in node["spec"].get("taints", [])
    )


def aggregation_flags(p: PkiPaths) -> list[str]:
    """kube-apiserver flags of the aggregation layer (an APIService served by another server,
    e.g. metrics-server). The API server publishes the request-header settings in
    kube-system/extension-apiserver-authentication, where aggregated servers read them. Routing
    stays the default (to a Service's ClusterIP, or an ExternalName's host): nothing else in
    the sandbox registers an APIService backed by a Service."""
    return [
        f"--requestheader-client-ca-file={p.front_proxy_ca_cert}",
        f"--requestheader-allowed-names={pki.FRONT_PROXY_CLIENT}",
        "--requestheader-username-headers=X-Remote-User",
        "--requestheader-group-headers=X-Remote-Group",
        "--requestheader-extra-headers-prefix=X-Remote-Extra-",
        f"--proxy-client-cert-file={p.front_proxy_client_cert}",
        f"--proxy-client-key-file={p.front_proxy_client_key}",
    ]


# ---------------------------------------------------------------- the control plane


class ControlPlane:
    """The control-plane processes of one state folder. `start()` starts and waits, `down()`
    stops and deletes; building binaries and retrying on a taken port are the caller's."""

    def __init__(self, state_dir: Path, nodes: int) -> None:
        if nodes < 1:
            raise SandboxError("the sandbox needs at least one node")
        self.state_dir = state_dir
        self.nodes = nodes
        self._procs: dict[str, subprocess.Popen[bytes]] = {}

    # -- paths
    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "kubeconfig"

    @property
    def audit_log(self) -> Path:
        return self.state_dir / "audit.log"

    @property
    def bin_dir(self) -> Path:
        return build.bin_dir()

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def pki(self) -> pki.PkiPaths:
        return pki.PkiPaths(self.state_dir / "pki")

    @property
    def _pids_file(self) -> Path:
        return self.state_dir / "pids.json"

    @property
    def _state_file(self) -> Path:
        return self.state_dir / "state.json"

    @property
    def etcd_data_dir(self) -> Path:
        digest = hashlib.sha256(str(self.state_dir).encode()).hexdigest()[:12]
        shm = Path("/dev/shm")
        if shm.is_dir() and os.access(shm, os.W_OK):
            return shm / f"aidbox-sandbox-{digest}"
        return self.state_dir / "etcd-data"

    # -- recorded state
    def _read_json(self, path: Path) -> dict[str, Any]:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _write_state(self, state: dict[str, Any]) -> None:
        self._state_file.write_text(json.dumps(state, indent=2))

    def _records(self) -> list[dict[str, Any]]:
        procs = self._read_json(self._pids_file).get("processes", [])
        return [p for p in procs if isinstance(p, dict) and isinstance(p.get("pid"), int)]

    def _record(self, name: str, pid: int) -> None:
        records = [r for r in self._records() if r.get("name") != name]
        records.append({"name": name, "pid": pid, "start_time": proc_start_time(pid)})
        tmp = self._pids_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"processes": records}, indent=2))
        os.replace(tmp, self._pids_file)

    @staticmethod
    def _is_ours(record: dict[str, Any]) -> bool:
        pid = int(record["pid"])
        started = proc_start_time(pid)
        return started is not None and started == record.get("start_time")

    def has_state(self) -> bool:
        """Something of an earlier run is left: recorded processes or the state folder."""
        return bool(self._records()) or self.state_dir.exists()

    @property
    def api_server_url(self) -> str | None:
        port = self._read_json(self._state_file).get("ports", {}).get("kube-apiserver")
        return f"https://{LOOPBACK}:{port}" if port else None

    def api(self) -> KubeApi:
        """A client of the running API server, authenticated as the sandbox admin."""
        port = self._read_json(self._state_file).get("ports", {}).get("kube-apiserver")
        if not port:
            raise SandboxError("the sandbox is not up (no recorded API server port)")
        p = self.pki
        return KubeApi(
            int(port), p.ca_cert, p.client_cert(pki.ADMIN.stem), p.client_key(pki.ADMIN.stem)
        )

    # -- status
    def status(self) -> SandboxStatus:
        procs = []
        for r in self._records():
            alive = self._is_ours(r)
            procs.append(
                ProcessStatus(
                    str(r.get("name")), int(r["pid"]), alive, _rss_mb(r["pid"]) if alive else 0.0
                )
            )
        state = self._read_json(self._state_file)
        running = (
            bool(procs)
            and state.get("ready") is True
            and {p.name for p in procs} >= set(COMPONENTS)
            and all(p.alive for p in procs)
            and self._readyz()
        )
        return SandboxStatus(
            running=running,
            processes=procs,
            api_server_url=self.api_server_url,
            kubeconfig=self.kubeconfig if self.kubeconfig.exists() else None,
            rss_mb=round(sum(p.rss_mb for p in procs), 1),
        )

    def _readyz(self) -> bool:
        try:
            code, _ = self.api().call("GET", "/readyz", timeout=3)
        except (OSError, SandboxError, ssl.SSLError):
            return False
        return code == 200

    # -- stop
    def down(self) -> None:
        """Stop every process this control plane recorded and remove its state (tmpfs
        included)."""
        self.stop_processes()
        shutil.rmtree(self.etcd_data_dir, ignore_errors=True)
        shutil.rmtree(self.state_dir, ignore_errors=True)

    def _orphans(self) -> list[dict[str, Any]]:
        """Processes of our binaries whose arguments point into this sandbox's state or etcd
        data folder but that pids.json no longer lists (e.g. the state folder was deleted by
        hand). Matching is by exact binary path and exact folder, never by name alone."""
        binaries = {str(self.bin_dir / n) for n in (*COMPONENTS,)}
        marks = (f"{self.state_dir}/", f"={self.etcd_data_dir}")
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                args = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
            except OSError:
                continue
            if args and args[0] in binaries and any(m in a for a in args for m in marks):
                found.append({"name": Path(args[0]).name, "pid": int(entry.name)})
        return found

    def stop_processes(self) -> None:
        """Stop the recorded, orphaned and own child processes; leaves the files alone."""
        records = [r for r in self._records() if self._is_ours(r)]
        ours = {int(r["pid"]) for r in records}
        records += [r for r in self._orphans() if r["pid"] not in ours]
        ours = {int(r["pid"]) for r in records}
        for name, proc in self._procs.items():
            if proc.poll() is None and proc.pid not in ours:
                records.append({"name": name, "pid": proc.pid})
        # Clients first, then the API server (it drains in ~1 s while etcd is still there),
        # then etcd; SIGKILL whatever has not exited after a few seconds.
        waves = (
            {"kwok", "kube-scheduler", "kube-controller-manager"},
            {"kube-apiserver"},
            {"etcd"},
        )
        known = set().union(*waves)
        for wave in waves:
            group = [
                r
                for r in records
                if r.get("name") in wave or (wave == waves[0] and r.get("name") not in known)
            ]
            self._terminate(group, grace=5.0)
        self._reap()
        self._procs.clear()

    def _terminate(self, records: list[dict[str, Any]], grace: float) -> None:
        if not records:
            return
        self._signal_all(records, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(self._alive(r) for r in records):
            self._reap()
            time.sleep(0.05)
        left = [r for r in records if self._alive(r)]
        if left:
            self._signal_all(left, signal.SIGKILL)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and any(self._alive(r) for r in left):
                self._reap()
                time.sleep(0.05)

    def _alive(self, record: dict[str, Any]) -> bool:
        return proc_start_time(int(record["pid"])) is not None

    def _reap(self) -> None:
        for proc in self._procs.values():
            proc.poll()

    @staticmethod
    def _signal_all(records: Sequence[dict[str, Any]], sig: signal.Signals) -> None:
        for r in records:
            pid = int(r["pid"])
            try:
                # Each process leads its own session (start_new_session), so pgid == pid.
                if os.getpgid(pid) == pid:
                    os.killpg(pid, sig)
                else:
                    os.kill(pid, sig)
            except (ProcessLookupError, PermissionError):
                pass

    # -- start, phase by phase (docs/sandbox.md, "Start-up")
    def start(self, bins: Path, progress: Progress, apiserver_flags: Sequence[str] = ()) -> None:
        """Start every process on fresh ports and wait until the cluster works. Raises
        PortBusyError if a chosen port was taken in between; stops nothing on failure.
        `apiserver_flags` go after kube-apiserver's own."""
        ports = choose_ports()
        self._write_files(ports)
        progress("starting etcd")
        self._start_etcd(bins, ports)
        progress("starting kube-apiserver")
        api = self._start_apiserver(bins, ports, apiserver_flags)
        progress("starting kube-controller-manager, kube-scheduler and kwok")
        self._start_controllers(bins, ports)
        self._create_nodes(api)
        self._wait_until_working(api, ports)
        self._mark_ready()

    def _write_files(self, ports: dict[str, int]) -> None:
        """The state folder: certificates, kubeconfigs, audit policy, kwok stages, state.json."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.logs_dir.mkdir(exist_ok=True)
        paths = pki.generate(self.state_dir / "pki")
        self._write_kubeconfigs(paths, f"https://{LOOPBACK}:{ports['kube-apiserver']}")
        (self.state_dir / "audit-policy.yaml").write_text(yaml.safe_dump(AUDIT_POLICY))
        (self.state_dir / "kwok-stages.yaml").write_text(
            yaml.safe_dump_all(stage_documents(), sort_keys=False)
        )
        state = {
            "ports": ports,
            "ready": False,
            "nodes": self.nodes,
            "etcd_data_dir": str(self.etcd_data_dir),
            "versions": {
                "kubernetes": build.KUBERNETES_VERSION,
                "etcd": build.ETCD_VERSION,
                "kwok": build.KWOK_VERSION,
            },
        }
        self._write_state(state)

    def _write_kubeconfigs(self, paths: PkiPaths, server: str) -> None:
        """`kubeconfig` for the admin, `<client>.kubeconfig` for every other client cert."""
        ca_pem = paths.ca_cert.read_bytes()
        for client in pki.CLIENTS:
            user = {
                "client-certificate-data": base64.b64encode(
                    paths.client_cert(client.stem).read_bytes()
                ).decode(),
                "client-key-data": base64.b64encode(
                    paths.client_key(client.stem).read_bytes()
                ).decode(),
            }
            target = (
                self.kubeconfig
                if client is pki.ADMIN
                else self.state_dir / f"{client.stem}.kubeconfig"
            )
            target.write_text(yaml.safe_dump(kubeconfig_dict(server, ca_pem, user)))
            target.chmod(0o600)

    def _start_etcd(self, bins: Path, ports: dict[str, int]) -> None:
        """etcd on an empty data folder (tmpfs when there is one); waits for /health."""
        data_dir = self.etcd_data_dir
        shutil.rmtree(data_dir, ignore_errors=True)
        data_dir.mkdir(parents=True)
        etcd_url = f"http://{LOOPBACK}:{ports['etcd']}"
        peer_url = f"http://{LOOPBACK}:{ports['etcd-peer']}"
        self._spawn(
            "etcd",
            bins,
            [
                "--name=sandbox",
                f"--data-dir={data_dir}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=sandbox={peer_url}",
                "--initial-cluster-state=new",
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
        )
        self._wait("etcd /health", lambda: http_ok(ports["etcd"], "/health"), ports, 30)

    def _start_apiserver(
        self, bins: Path, ports: dict[str, int], extra_flags: Sequence[str]
    ) -> KubeApi:
        """kube-apiserver; waits for /readyz and returns an admin client."""
        self._spawn("kube-apiserver", bins, [*self._apiserver_flags(ports), *extra_flags])
        api = self.api()

        def readyz() -> bool:
            try:
                return api.call("GET", "/readyz", timeout=2)[0] == 200
            except (OSError, ssl.SSLError):
                return False

        self._wait("kube-apiserver /readyz", readyz, ports, 90)
        return api

    def _apiserver_flags(self, ports: dict[str, int]) -> list[str]:
        p = self.pki
        return [
            f"--etcd-servers=http://{LOOPBACK}:{ports['etcd']}",
            f"--bind-address={LOOPBACK}",
            f"--advertise-address={LOOPBACK}",
            f"--secure-port={ports['kube-apiserver']}",
            f"--tls-cert-file={p.server_cert}",
            f"--tls-private-key-file={p.server_key}",
            f"--client-ca-file={p.ca_cert}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={p.sa_pub}",
            f"--service-account-signing-key-file={p.sa_key}",
            f"--service-cluster-ip-range={pki.SERVICE_CIDR}",
            "--authorization-mode=Node,RBAC",
            "--endpoint-reconciler-type=none",
            "--allow-privileged=true",
            f"--audit-log-path={self.audit_log}",
            f"--audit-policy-file={self.state_dir / 'audit-policy.yaml'}",
            "--audit-log-maxsize=200",
            "--audit-log-maxbackup=1",
            "--profiling=false",
            *aggregation_flags(p),
        ]

    def _start_controllers(self, bins: Path, ports: dict[str, int]) -> None:
        """kube-controller-manager, kube-scheduler and kwok, without waiting for them."""
        self._start_controller_manager(bins, ports)
        self._start_scheduler(bins, ports)
        self._start_kwok(bins)

    def _start_controller_manager(self, bins: Path, ports: dict[str, int]) -> None:
        p = self.pki
        kcm_kc = self.state_dir / "controller-manager.kubeconfig"
        self._spawn(
            "kube-controller-manager",
            bins,
            [
                f"--kubeconfig={kcm_kc}",
                f"--authentication-kubeconfig={kcm_kc}",
                f"--authorization-kubeconfig={kcm_kc}",
                "--leader-elect=false",
                f"--bind-address={LOOPBACK}",
                f"--secure-port={ports['kube-controller-manager']}",
                "--controllers=*",
                "--use-service-account-credentials=true",
                f"--service-account-private-key-file={p.sa_key}",
                f"--root-ca-file={p.ca_cert}",
                f"--cluster-signing-cert-file={p.ca_cert}",
                f"--cluster-signing-key-file={p.ca_key}",
                f"--service-cluster-ip-range={pki.SERVICE_CIDR}",
                "--allocate-node-cidrs=false",
                "--concurrent-gc-syncs=20",
                "--profiling=false",
            ],
        )

    def _start_scheduler(self, bins: Path, ports: dict[str, int]) -> None:
        sched_kc = self.state_dir / "scheduler.kubeconfig"
        self._spawn(
            "kube-scheduler",
            bins,
            [
                f"--kubeconfig={sched_kc}",
                f"--authentication-kubeconfig={sched_kc}",
                f"--authorization-kubeconfig={sched_kc}",
                "--leader-elect=false",
                f"--bind-address={LOOPBACK}",
                f"--secure-port={ports['kube-scheduler']}",
                "--profiling=false",
            ],
        )

    def _start_kwok(self, bins: Path) -> None:
        st = self.state_dir
        self._spawn(
            "kwok",
            bins,
            [
                f"--kubeconfig={st / 'kwok.kubeconfig'}",
                "-c",
                str(st / "kwok-stages.yaml"),
                f"--manage-nodes-with-label-selector={NODE_LABEL_SELECTOR}",
                f"--cidr={POD_CIDR}",
                "--node-ip=10.240.255.1",
                "--node-lease-duration-seconds=40",
            ],
        )

    def _create_nodes(self, api: KubeApi) -> None:
        """The kwok nodes sandbox-node-0..N-1."""
        for i in range(self.nodes):
            code, body = api.call("POST", "/api/v1/nodes", node_manifest(i))
            if code not in (201, 409):
                raise SandboxError(f"creating node sandbox-node-{i} failed ({code}): {body}")

    def _wait_until_working(self, api: KubeApi, ports: dict[str, int]) -> None:
        """controller-manager and scheduler healthy, nodes Ready, the default ServiceAccount."""
        self._wait(
            "kube-controller-manager /healthz",
            lambda: https_ok(ports["kube-controller-manager"], "/healthz"),
            ports,
            60,
        )
        self._wait(
            "kube-scheduler /healthz",
            lambda: https_ok(ports["kube-scheduler"], "/healthz"),
            ports,
            60,
        )
        self._wait(
            f"{self.nodes} nodes Ready and untainted", lambda: self._nodes_ready(api), ports, 90
        )
        self._wait(
            "the default ServiceAccount (controller-manager working)",
            lambda: api.call("GET", "/api/v1/namespaces/default/serviceaccounts/default")[0] == 200,
            ports,
            60,
        )

    def _mark_ready(self) -> None:
        """`ready: true` in state.json: status() reports running from now on."""
        state = self._read_json(self._state_file)
        state["ready"] = True
        self._write_state(state)

    def _nodes_ready(self, api: KubeApi) -> bool:
        code, body = api.call("GET", f"/api/v1/nodes?labelSelector={NODE_LABEL_SELECTOR}")
        if code != 200 or not isinstance(body, dict):
            return False
        items = body.get("items", [])
        return len(items) >= self.nodes and all(_node_ready_and_untainted(n) for n in items)

    # -- processes while starting
    def _spawn(self, name: str, bins: Path, args: list[str]) -> subprocess.Popen[bytes]:
        log = self.logs_dir / f"{name}.log"
        with log.open("ab") as fh:
            proc = subprocess.Popen(
                [str(bins / name), *args],
                stdout=fh,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                close_fds=True,
                cwd=self.state_dir,
            )
        self._procs[name] = proc
        self._record(name, proc.pid)
        return proc

    def _check_alive(self, ports: dict[str, int]) -> None:
        for name, proc in self._procs.items():
            code = proc.poll()
            if code is None:
                continue
            log = self.logs_dir / f"{name}.log"
            text = tail(log)
            hint = ""
            if "address already in use" in text.lower():
                busy = ", ".join(f"{k}={v}" for k, v in ports.items())
                hint = (
                    f"\nA port on {LOOPBACK} was taken by another process between choosing and "
                    f"binding it (ports: {busy}). Run the sandbox `down` and `up` again."
                )
            error = PortBusyError if hint else SandboxError
            raise error(
                f"{name} exited with code {code} while the sandbox was starting.{hint}\n"
                f"Last lines of {log}:\n{text}"
            )

    def _wait(
        self, what: str, check: Callable[[], bool], ports: dict[str, int], timeout: float
    ) -> None:
        deadline = time.monotonic() + timeout
        while True:
            self._check_alive(ports)
            if check():
                return
            if time.monotonic() > deadline:
                raise SandboxError(
                    f"timed out after {timeout:.0f}s waiting for {what}; logs are in "
                    f"{self.logs_dir}"
                )
            time.sleep(0.15)

    # -- fault injection: stop and start one control-plane process (same flags, same ports)
    def stop_component(self, name: str) -> None:
        """Stop etcd or kube-apiserver (SIGTERM, then SIGKILL after 5 s); start_component
        brings it back as it was."""
        if name not in ("etcd", "kube-apiserver"):
            raise SandboxError(f"only etcd and kube-apiserver can be stopped alone, not {name}")
        record = next((r for r in self._records() if r.get("name") == name), None)
        if record is None or not self._is_ours(record):
            raise SandboxError(f"{name} is not running")
        argv = Path(f"/proc/{record['pid']}/cmdline").read_bytes().decode().split("\0")[:-1]
        state = self._read_json(self._state_file)
        state.setdefault("stopped", {})[name] = argv
        self._write_state(state)
        self._terminate([record], grace=5.0)
        self._reap()

    def start_component(self, name: str, timeout: float = 90.0) -> None:
        """Start a component stopped by stop_component and wait until it serves."""
        state = self._read_json(self._state_file)
        argv = state.get("stopped", {}).pop(name, None)
        if not argv:
            raise SandboxError(f"{name} was not stopped by stop_component")
        self._spawn(name, Path(argv[0]).parent, argv[1:])
        self._write_state(state)
        ports = state["ports"]

        def serving() -> bool:
            return http_ok(ports["etcd"], "/health") if name == "etcd" else self._readyz()

        self._wait(f"{name} serving again", serving, ports, timeout)

    def restart_component(self, name: str, down_seconds: float = 0.0) -> None:
        self.stop_component(name)
        time.sleep(down_seconds)
        self.start_component(name)

    # -- kubeconfigs for other identities
    def write_token_kubeconfig(self, path: Path, token: str) -> Path:
        """A kubeconfig with the sandbox's server and CA that authenticates with a bearer token."""
        url = self.api_server_url
        if not url:
            raise SandboxError("the sandbox is not up; run up() first")
        cfg = kubeconfig_dict(url, self.pki.ca_cert.read_bytes(), {"token": token})
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(cfg))
        with contextlib.suppress(OSError):
            path.chmod(0o600)
        return path
