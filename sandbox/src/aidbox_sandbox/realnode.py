"""Real kubelet nodes for the sandbox: containerd + runc + CNI (Debian packages), kubelet and
kube-proxy (built from the control plane's wrapper module), each node confined in namespaces of
its own (see nodehost). Real nodes are tainted (nodeconfig.REAL_NODE_TAINT): only pods that
tolerate it run there, kwok nodes stay the default. Images come from local OCI tarballs (images).

Everything a node leaves on the host is named after the sandbox's state folder (identity()), so
`down()` finds it again even when the recorded state was lost in a crash.

What the nodes need of the control plane is ClusterAccess (folders, certificates, the API
server); what the API server needs for them is kubelet_access_flags(). Neither side imports
the other: the orchestrator (sandbox.py) joins them.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import yaml

from . import build, hostdeps, images, nodehost, pki
from .errors import SandboxError
from .kubeapi import KubeApi, kubeconfig_dict
from .nodeconfig import (
    CLUSTER_DNS,
    REAL_NODE_LABEL,
    NodePlan,
    cni_conflist,
    containerd_toml,
    identity,
    kube_proxy_config,
    kubelet_config,
    node_labels,
    plan,
    registry_hosts_dir,
    registry_hosts_toml,
    write_json,
)

Progress = Callable[[str], None]
ZONES = ("zone-a", "zone-b", "zone-c")
REGISTRY_RELAY = "registry-relay"  # suffix of the registry relays' recorded names


class ClusterAccess(Protocol):
    """What real nodes use of the sandbox's control plane (ControlPlane and Sandbox have it)."""

    @property
    def state_dir(self) -> Path: ...

    @property
    def logs_dir(self) -> Path: ...

    @property
    def pki(self) -> pki.PkiPaths: ...

    @property
    def api_server_url(self) -> str | None: ...

    def api(self) -> KubeApi: ...


def kubelet_access_flags(paths: pki.PkiPaths) -> list[str]:
    """kube-apiserver flags for talking to real kubelets (logs, exec, port-forward)."""
    return [
        # Reach kubelets by their InternalIP only, never through a DNS lookup of the node's name.
        "--kubelet-preferred-address-types=InternalIP",
        f"--kubelet-client-certificate={paths.client_cert(pki.KUBELET_CLIENT.stem)}",
        f"--kubelet-client-key={paths.client_key(pki.KUBELET_CLIENT.stem)}",
        f"--kubelet-certificate-authority={paths.ca_cert}",
    ]


class RealNodes:
    def __init__(self, cluster: ClusterAccess) -> None:
        self.cluster = cluster
        self.root = cluster.state_dir / "realnodes"

    # -- recorded state
    @property
    def _state_file(self) -> Path:
        return self.root / "state.json"

    def _state(self) -> dict[str, Any]:
        try:
            data = json.loads(self._state_file.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _save(self, state: dict[str, Any]) -> None:
        tmp = self._state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(self._state_file)

    def names(self) -> list[str]:
        return [str(n["name"]) for n in self._state().get("nodes", [])]

    def holder(self, name: str) -> int:
        """PID of the process holding a node's namespaces (for `nsenter --target`)."""
        for node in self._state().get("nodes", []):
            if node["name"] == name and nodehost.proc_start_time(node["holder"]) == node.get(
                "holder_start"
            ):
                return int(node["holder"])
        raise SandboxError(f"real node {name} is not running")

    def import_image(self, archive: Path) -> None:
        """Load an image tarball (OCI or docker-archive) into every real node's containerd."""
        for name in self.names():
            nodehost.in_node(
                self.holder(name), [*self._ctr(name), "images", "import", str(archive)], timeout=300
            )

    def _ctr(self, name: str) -> list[str]:
        node = next(n for n in self._state().get("nodes", []) if n["name"] == name)
        socket = self.root / node["dir"] / "containerd.sock"
        return ["ctr", "--address", str(socket), "-n", "k8s.io"]

    def container_pid(self, name: str, container_id: str) -> int | None:
        """Host PID of a running container's main process on node `name` (the id as in a
        pod's containerStatuses, with or without `containerd://`), None if it is not running."""
        wanted = container_id.removeprefix("containerd://")
        out = nodehost.in_node(self.holder(name), [*self._ctr(name), "tasks", "ls"])
        for line in out.splitlines()[1:]:
            fields = line.split()
            if len(fields) >= 3 and fields[0] == wanted and fields[2] == "RUNNING":
                return int(fields[1])
        return None

    def pod_log(self, name: str, namespace: str, pod: str, uid: str, container: str) -> str:
        """Every log file the kubelet kept of one container of a pod on node `name`, oldest
        restart first (CRI format: time, stream, tag, then the line)."""
        folder = f"/var/log/pods/{namespace}_{pod}_{uid}/{container}"
        script = f'for f in $(ls {folder} | sort -n); do cat "{folder}/$f"; done'
        return nodehost.in_node(self.holder(name), ["sh", "-c", script], check=False)

    def running(self, count: int) -> bool:
        state = self._state()
        nodes = state.get("nodes", [])
        if len(nodes) < count or not state.get("ready"):
            return False
        procs = state.get("processes", [])
        return all(nodehost.proc_start_time(p["pid"]) == p["start"] for p in procs)

    # -- up
    def up(self, count: int = 2, progress: Progress = print) -> None:
        if self.running(count):
            return
        hostdeps.ensure_packages(progress)
        bins = build.ensure_node_binaries(progress)
        archives = images.image_archives(self.root.parent / "images", progress)
        self.down()
        started = time.monotonic()
        self.root.mkdir(parents=True)
        state: dict[str, Any] = {"nodes": [], "processes": [], "ready": False}
        self._save(state)
        try:
            self._start(count, bins, archives, state, progress)
        except BaseException:
            self.down()
            raise
        progress(f"{count} real nodes Ready in {time.monotonic() - started:.1f}s")

    def _spawn(self, state: dict[str, Any], name: str, args: list[str]) -> int:
        log = self.cluster.logs_dir / f"{name}.log"
        with log.open("ab") as fh:
            proc = subprocess.Popen(
                args,
                stdout=fh,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        state["processes"].append(
            {"name": name, "pid": proc.pid, "start": nodehost.proc_start_time(proc.pid)}
        )
        self._save(state)
        return proc.pid

    def _subnet(self) -> int:
        """A /24 of 10.254/16 for the host ends of the veths, unused on this host."""
        used = nodehost.used_ipv4_networks()
        first = int(identity(self.cluster.state_dir), 16) % 250
        for offset in range(250):
            subnet = (first + offset) % 250
            if f"10.254.{subnet}." not in used:
                return subnet
        raise SandboxError("no free /24 in 10.254.0.0/16 for real nodes' links")

    def _start(
        self,
        count: int,
        bins: Path,
        archives: list[Path],
        state: dict[str, Any],
        progress: Progress,
    ) -> None:
        url = self.cluster.api_server_url
        if not url:
            raise SandboxError("the sandbox is not up (no recorded API server port)")
        api_port = int(url.rsplit(":", 1)[1])
        relay = self.root / "api.sock"
        self._spawn(
            state,
            "realnode-api-relay",
            ["socat", f"UNIX-LISTEN:{relay},fork,unlink-early", f"TCP:127.0.0.1:{api_port}"],
        )
        subnet = self._subnet()
        nodes = [
            plan(self.cluster.state_dir, self.root, i, subnet, ZONES[i % len(ZONES)])
            for i in range(count)
        ]
        for node in nodes:
            progress(f"starting real node {node.name}")
            holder = self._start_holder(node, state)
            self._start_node(node, holder, bins, archives, api_port, relay, state)
        holders = {n["name"]: n["holder"] for n in state["nodes"]}
        pair = 0
        for a in nodes:
            for b in nodes[a.index + 1 :]:
                nodehost.link_nodes(
                    (holders[a.name], a.pod_cidr, a.node_ip),
                    (holders[b.name], b.pod_cidr, b.node_ip),
                    pair,
                    f"peer{a.index}",
                    f"peer{b.index}",
                )
                pair += 1
        self._wait_ready([n.name for n in nodes])
        self._api_endpoints(nodes, api_port)
        state["ready"] = True
        self._save(state)

    def _start_holder(self, node: NodePlan, state: dict[str, Any]) -> int:
        (node.dir / "cni").mkdir(parents=True)
        nodehost.write_holder_files(node.dir, CLUSTER_DNS)
        holder = nodehost.start_holder(node.dir, self.cluster.logs_dir / f"{node.name}-holder.log")
        state["nodes"].append(
            {
                "name": node.name,
                "holder": holder,
                "holder_start": nodehost.proc_start_time(holder),
                "mnt": nodehost.ns_inode(holder, "mnt"),
                "net": nodehost.ns_inode(holder, "net"),
                "dir": node.dir.name,
                "host_if": node.host_if,
                "node_ip": node.node_ip,
                "cgroup": node.cgroup,
            }
        )
        self._save(state)
        nodehost.link_host(nodehost.NodeLink(holder, node.host_if, node.host_ip, node.node_ip))
        nodehost.create_cgroup_root(node.cgroup)
        return holder

    def _credentials(self, node: NodePlan, api_port: int) -> tuple[Path, Path, Path]:
        """kubelet serving cert, kubelet kubeconfig, kube-proxy kubeconfig."""
        paths = self.cluster.pki
        ca = paths.ca_cert
        node_pki = pki.PkiPaths(node.dir / "pki")
        node_pki.root.mkdir()
        shutil.copy(ca, node_pki.ca_cert)
        server = f"https://127.0.0.1:{api_port}"
        kubeconfigs = []
        for stem, cn, orgs in (
            ("kubelet-client", f"system:node:{node.name}", ("system:nodes",)),
            ("kube-proxy", "system:kube-proxy", ()),
        ):
            cert, key = pki.issue(paths, stem, cn, orgs)
            shutil.move(cert, node_pki.root / cert.name)
            shutil.move(key, node_pki.root / key.name)
            user = {
                "client-certificate": str(node_pki.root / cert.name),
                "client-key": str(node_pki.root / key.name),
            }
            target = node.dir / f"{stem}.kubeconfig"
            target.write_text(yaml.safe_dump(kubeconfig_dict(server, ca.read_bytes(), user)))
            kubeconfigs.append(target)
        cert, key = pki.issue(
            paths,
            "kubelet-serving",
            f"system:node:{node.name}",
            ("system:nodes",),
            server_ips=(node.node_ip,),
            server_dns=(node.name,),
        )
        shutil.move(cert, node_pki.root / cert.name)
        shutil.move(key, node_pki.root / key.name)
        config = kubelet_config(
            node, node_pki.ca_cert, node_pki.root / cert.name, node_pki.root / key.name
        )
        write_json(node.dir / "kubelet.json", config)
        return node.dir / "kubelet.json", kubeconfigs[0], kubeconfigs[1]

    def _start_node(
        self,
        node: NodePlan,
        holder: int,
        bins: Path,
        archives: list[Path],
        api_port: int,
        relay: Path,
        state: dict[str, Any],
    ) -> None:
        enter = ["nsenter", f"--target={holder}", "--mount", "--net", "--"]
        kubelet_json, kubelet_kc, proxy_kc = self._credentials(node, api_port)
        (node.dir / "containerd.toml").write_text(containerd_toml(node))
        node.registry_hosts_dir.mkdir()
        write_json(node.dir / "cni" / "10-bridge.conflist", cni_conflist(node))
        write_json(node.dir / "kube-proxy.json", kube_proxy_config(node, proxy_kc))
        self._spawn(
            state,
            f"{node.name}-api-relay",
            [
                *enter,
                "socat",
                # All addresses: the kubelet uses 127.0.0.1, pods come through the kubernetes
                # Service to the node's InternalIP (see _api_endpoints).
                f"TCP-LISTEN:{api_port},fork,reuseaddr",
                f"UNIX-CONNECT:{relay}",
            ],
        )
        self._spawn(
            state,
            f"{node.name}-containerd",
            [*enter, "containerd", "--config", str(node.dir / "containerd.toml")],
        )
        self._wait_file(node.containerd_socket, f"{node.name}'s containerd")
        ctr = ["ctr", "--address", str(node.containerd_socket), "-n", "k8s.io"]
        for archive in archives:
            nodehost.in_node(holder, [*ctr, "images", "import", str(archive)], timeout=60)
        self._spawn(
            state,
            f"{node.name}-kubelet",
            [
                *enter,
                str(bins / "kubelet"),
                f"--config={kubelet_json}",
                f"--kubeconfig={kubelet_kc}",
                f"--hostname-override={node.name}",
                f"--node-ip={node.node_ip}",
                f"--node-labels={node_labels(node)}",
                "--v=1",
            ],
        )
        self._spawn(
            state,
            f"{node.name}-kube-proxy",
            [*enter, str(bins / "kube-proxy"), f"--config={node.dir / 'kube-proxy.json'}"],
        )

    # -- the sandbox's registry (registry.py)
    def connect_registry(self, port: int, timeout: float = 20) -> None:
        """Let every node pull from the registry on the host's 127.0.0.1:<port>, as they reach
        the API server: socat on a unix socket in the host netns connects to the registry,
        socat on 127.0.0.1:<port> in each node netns to that socket; the node's containerd
        gets a hosts.toml (plain HTTP) for 127.0.0.1:<port>. Replaces an earlier connection."""
        state = self._state()
        if not state.get("ready"):
            raise SandboxError("the real nodes are not running")
        if state.get("registry_port") == port and self._registry_relays_alive(state):
            return
        self.disconnect_registry()
        state = self._state()
        host, socket = f"127.0.0.1:{port}", self.root / "registry.sock"
        self._spawn(
            state,
            f"realnode-{REGISTRY_RELAY}",
            ["socat", f"UNIX-LISTEN:{socket},fork,unlink-early", f"TCP:{host}"],
        )
        for node in state["nodes"]:
            hosts = registry_hosts_dir(self.root / node["dir"]) / host
            hosts.mkdir(parents=True, exist_ok=True)
            (hosts / "hosts.toml").write_text(registry_hosts_toml(host))
            enter = ["nsenter", f"--target={self.holder(node['name'])}", "--mount", "--net", "--"]
            self._spawn(
                state,
                f"{node['name']}-{REGISTRY_RELAY}",
                [
                    *enter,
                    "socat",
                    f"TCP-LISTEN:{port},bind=127.0.0.1,fork,reuseaddr",
                    f"UNIX-CONNECT:{socket}",
                ],
            )
        state["registry_port"] = port
        self._save(state)
        for name in self.names():
            self._wait_registry(name, port, timeout)

    def _registry_relays_alive(self, state: dict[str, Any]) -> bool:
        relays = [p for p in state.get("processes", []) if p["name"].endswith(REGISTRY_RELAY)]
        alive = [p for p in relays if nodehost.proc_start_time(p["pid"]) == p["start"]]
        return bool(relays) and len(alive) == len(relays)

    def _wait_registry(self, name: str, port: int, timeout: float) -> None:
        """Until GET /v2/ answers 200 from inside node `name`'s netns, through its relay."""
        probe = f"printf 'GET /v2/ HTTP/1.0\\r\\n\\r\\n' | socat -t 2 - TCP:127.0.0.1:{port}"
        deadline = time.monotonic() + timeout
        while True:
            answer = nodehost.in_node(self.holder(name), ["sh", "-c", probe], check=False)
            if answer.startswith("HTTP/1.") and answer.split(None, 2)[1:2] == ["200"]:
                return
            if time.monotonic() > deadline:
                raise SandboxError(
                    f"{name} does not reach the registry on 127.0.0.1:{port} through its relay "
                    f"(answer {answer[:200]!r}); logs in {self.cluster.logs_dir}"
                )
            time.sleep(0.2)

    def disconnect_registry(self) -> None:
        """Stop the registry relays and remove the nodes' hosts.toml files."""
        state = self._state()
        relays = [p for p in state.get("processes", []) if p["name"].endswith(REGISTRY_RELAY)]
        pids = {p["pid"] for p in relays if nodehost.proc_start_time(p["pid"]) == p["start"]}
        pids |= nodehost.processes_with_args("socat", self._registry_relay_arg())
        nodehost.kill_all(pids, grace=1)
        if not state:
            return
        state["processes"] = [p for p in state.get("processes", []) if p not in relays]
        state.pop("registry_port", None)
        self._save(state)
        for node in state.get("nodes", []):
            for hosts in registry_hosts_dir(self.root / node["dir"]).glob("*"):
                shutil.rmtree(hosts, ignore_errors=True)

    def _registry_relay_arg(self) -> str:
        return f"UNIX-LISTEN:{self.root / 'registry.sock'},fork,unlink-early"

    def _api_endpoints(self, nodes: list[NodePlan], api_port: int) -> None:
        """Endpoints for the `kubernetes` Service (the sandbox's API server runs with
        --endpoint-reconciler-type=none): the nodes' relays, so that pods on real nodes reach
        the API server with in-cluster configuration (10.96.0.1:443)."""
        api = self.cluster.api()
        path = "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices"
        body = {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": "kubernetes-real-nodes",
                "labels": {
                    "kubernetes.io/service-name": "kubernetes",
                    "endpointslice.kubernetes.io/managed-by": "sandbox.aidbox.io",
                },
            },
            "addressType": "IPv4",
            "endpoints": [
                {"addresses": [n.node_ip], "conditions": {"ready": True}, "nodeName": n.name}
                for n in nodes
            ],
            "ports": [{"name": "https", "port": api_port, "protocol": "TCP"}],
        }
        api.call("DELETE", f"{path}/kubernetes-real-nodes")
        code, answer = api.call("POST", path, body)
        if code != 201:
            raise SandboxError(f"creating the kubernetes EndpointSlice failed ({code}): {answer}")

    def _wait_file(self, path: Path, what: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not path.exists():
            self._check_processes()
            if time.monotonic() > deadline:
                raise SandboxError(f"timed out waiting for {what}; logs in {self.cluster.logs_dir}")
            time.sleep(0.05)

    def _check_processes(self) -> None:
        for proc in self._state().get("processes", []):
            if nodehost.proc_start_time(proc["pid"]) != proc["start"]:
                log = self.cluster.logs_dir / f"{proc['name']}.log"
                tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
                raise SandboxError(f"{proc['name']} exited; last lines of {log}:\n{tail}")

    def _wait_ready(self, names: list[str], timeout: float = 90) -> None:
        api = self.cluster.api()
        deadline = time.monotonic() + timeout
        while True:
            self._check_processes()
            code, body = api.call("GET", f"/api/v1/nodes?labelSelector={REAL_NODE_LABEL}")
            ready = set()
            if code == 200 and isinstance(body, dict):
                for item in body.get("items", []):
                    conds = item["status"].get("conditions", [])
                    if any(c["type"] == "Ready" and c["status"] == "True" for c in conds):
                        ready.add(item["metadata"]["name"])
            if ready >= set(names):
                return
            if time.monotonic() > deadline:
                raise SandboxError(
                    f"real nodes not Ready after {timeout:.0f}s (Ready: {sorted(ready)}); logs "
                    f"in {self.cluster.logs_dir}"
                )
            time.sleep(0.2)

    # -- down
    def down(self) -> None:
        """Remove every real node of this sandbox, including what a crash left behind. Only
        processes proven ours are signalled: recorded (pid and start time), in a namespace held
        by one of our holders, in one of our cgroups, or our relay by its exact arguments."""
        state = self._state()
        ident = identity(self.cluster.state_dir)
        nodes = state.get("nodes", [])
        if nodes or self.root.exists():
            with contextlib.suppress(Exception):  # best effort: the API server may be gone
                self.cluster.api().call(
                    "DELETE", f"/api/v1/nodes?labelSelector={REAL_NODE_LABEL}", timeout=3
                )
        live = [
            p
            for p in state.get("processes", [])
            if nodehost.proc_start_time(p["pid"]) == p["start"]
        ]
        # The kubelets first, so nothing restarts the containers being stopped.
        nodehost.kill_all({p["pid"] for p in live if p["name"].endswith("-kubelet")}, grace=5)
        holders = nodehost.holders_under(self.root) | {
            n["holder"]
            for n in nodes
            if nodehost.proc_start_time(n["holder"]) == n.get("holder_start")
        }
        namespaces = {nodehost.ns_inode(h, kind) for h in holders for kind in ("mnt", "net")}
        cgroups = {n["cgroup"] for n in nodes} | {f"aidbox-{ident}-n{i}" for i in range(8)}
        pods: set[int] = set()
        for name in cgroups:
            pods |= nodehost.cgroup_pids(name)
        nodehost.kill_all(pods, grace=1)
        relay = f"UNIX-LISTEN:{self.root / 'api.sock'},fork,unlink-early"
        everything = {p["pid"] for p in live} | holders
        everything |= nodehost.processes_with_args("socat", relay)
        everything |= nodehost.processes_with_args("socat", self._registry_relay_arg())
        everything |= nodehost.processes_in_namespaces(n for n in namespaces if n is not None)
        nodehost.kill_all(everything, grace=3)
        for name in cgroups:
            nodehost.remove_cgroup_root(name)
        for i in range(8):
            nodehost.delete_link(f"abx{ident[:6]}n{i}")
        shutil.rmtree(self.root, ignore_errors=True)
