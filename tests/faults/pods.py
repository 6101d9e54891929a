"""Operator replicas installed from deploy/ as real pods (on the fault sandbox's real kubelet
nodes), each behind a fault proxy of its own that the operator cannot see.

The Deployment is deploy/overlays/single-namespace's, changed only to run on the real nodes
(nodeSelector and toleration of their taint) and to watch the scenario's namespace. Its RBAC is
deploy/'s cluster-wide one, which the suite installs for the process replicas too (a superset of
the single-namespace grants). The pods run the image built from the Dockerfile, uid 65532,
read-only root, with their ServiceAccount's token, and reach the API server through the
`kubernetes` Service, as in any cluster.

The proxy: an iptables REDIRECT inside each pod's own network namespace sends its connections
to the `kubernetes` Service to a FaultProxy listening in that namespace on 127.0.0.1, and the
proxy connects to the API server on the host's loopback. TLS stays end to end (the operator
still checks the Service address against the server's certificate). Connections opened before
the rule are reset once (`ss -K`), before the scenario begins. The namespace, and so the rule and
the proxy, outlive container restarts: a SIGKILLed operator comes back behind the same proxy.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import threading
import urllib.request
from collections.abc import Callable
from typing import Any, TypeVar

from kubernetes import client
from kubernetes.client.rest import ApiException
from proxy import FaultProxy

from aidbox_sandbox import nodehost
from aidbox_sandbox.operator import parse_metrics
from helpers import wait_for
from kube_helpers import apply
from operator_image import on_real_nodes, set_watched_namespace
from rbac import kustomize

OPERATOR_NAMESPACE = "aidbox-operator-system"
DEPLOYMENT = "aidbox-operator"
CONTAINER = "operator"
SELECTOR = "app.kubernetes.io/name=aidbox-operator"
METRICS_PORT = 8081  # deploy/'s --metrics-port
FIELD_MANAGER = "tests-faults"
# FAULTS_PODS_NO_ELECTION=1 runs the pods with --no-leader-elect: both then write, and the
# suite's verdict must catch it (shown failing once, see docs/reliability.md).
NO_ELECTION = os.environ.get("FAULTS_PODS_NO_ELECTION") == "1"
CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)
T = TypeVar("T")


def in_netns(pid: int, work: Callable[[], T]) -> T:
    """Run `work` on a thread of its own inside the network namespace of process `pid`
    (setns moves only the calling thread; sockets keep the namespace they were made in)."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), f"setns into the netns of {pid}")
            finally:
                os.close(fd)
            outcome["value"] = work()
        except BaseException as exc:  # handed to the caller's thread
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    result: T = outcome["value"]
    return result


def _listener() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    sock.setblocking(False)
    return sock


def _nsenter(pid: int, *args: str) -> None:
    nodehost.run(["nsenter", f"--net=/proc/{pid}/ns/net", "--", *args])


class PodReplica:
    """One operator pod: its identity is its name (POD_NAME), as the operator's own is."""

    def __init__(
        self, pods: OperatorPods, pod: client.V1Pod, api_port: int, netns_pid: int
    ) -> None:
        self.pods = pods
        self.identity: str = pod.metadata.name
        self.uid: str = pod.metadata.uid
        self.node: str = pod.spec.node_name
        self.proxy = FaultProxy("127.0.0.1", api_port, listener=in_netns(netns_pid, _listener))
        self.proxy.start()

    def running_pid(self) -> int:
        return self.pods.running_pid(self.identity, self.node)

    def kill(self) -> None:
        """SIGKILL the operator process; the kubelet restarts the container."""
        os.kill(self.running_pid(), signal.SIGKILL)

    def metrics(self) -> dict[str, float]:
        def read() -> bytes:
            url = f"http://127.0.0.1:{METRICS_PORT}/metrics"
            with urllib.request.urlopen(url, timeout=5) as answer:
                body: bytes = answer.read()
                return body

        return parse_metrics(in_netns(self.running_pid(), read).decode())

    def log_text(self) -> str:
        return self.pods.nodes.pod_log(
            self.node, OPERATOR_NAMESPACE, self.identity, self.uid, CONTAINER
        )

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def stop(self) -> None:
        self.proxy.stop()


class OperatorPods:
    """deploy/'s operator Deployment (2 replicas) on the real nodes, watching one namespace."""

    def __init__(self, api: client.ApiClient, sandbox: Any, nodes: Any) -> None:
        self.api = api
        self.sandbox = sandbox
        self.nodes = nodes
        self.core = client.CoreV1Api(api)
        self.apps = client.AppsV1Api(api)

    def deployment(self, watched: str) -> dict[str, Any]:
        docs = kustomize(self.sandbox, "single-namespace")
        found = next(d for d in docs if d["kind"] == "Deployment")
        set_watched_namespace(on_real_nodes(found), watched)
        if NO_ELECTION:
            args = found["spec"]["template"]["spec"]["containers"][0]["args"]
            args[args.index("--leader-elect")] = "--no-leader-elect"
        return found

    def install(self, watched: str) -> list[PodReplica]:
        wanted = self.deployment(watched)
        apply(self.api, wanted, manager=FIELD_MANAGER)
        pods = wait_for(self._ready_pods, timeout=180, interval=1, message="2 Ready operator pods")
        service = self.core.read_namespaced_service("kubernetes", "default")
        return [self._intercept(pod, service.spec.cluster_ip) for pod in pods]

    def running_pid(self, pod: str, node: str, timeout: float = 60) -> int:
        """Host PID of the operator process running in `pod`, waiting for one to run."""

        def pid() -> int | None:
            body = self.core.read_namespaced_pod(pod, OPERATOR_NAMESPACE)
            for status in body.status.container_statuses or []:
                if status.name == CONTAINER and status.container_id and status.state.running:
                    return self.nodes.container_pid(node, status.container_id)
            return None

        found: int = wait_for(
            pid, timeout=timeout, interval=0.5, message=f"{pod}'s operator running"
        )
        return found

    def _ready_pods(self) -> list[client.V1Pod] | None:
        want = 2
        found = self.core.list_namespaced_pod(OPERATOR_NAMESPACE, label_selector=SELECTOR)
        live = [p for p in found.items if p.metadata.deletion_timestamp is None]
        ready = [
            p
            for p in live
            if any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])
        ]
        return ready if len(ready) == want == len(live) else None

    def _intercept(self, pod: client.V1Pod, service_ip: str) -> PodReplica:
        api_port = int(str(self.sandbox.api_server_url).rsplit(":", 1)[1])
        pid = self.running_pid(pod.metadata.name, pod.spec.node_name)
        replica = PodReplica(self, pod, api_port, netns_pid=pid)
        _nsenter(
            pid,
            *("iptables", "-w", "-t", "nat", "-A", "OUTPUT", "-p", "tcp"),
            *("-d", f"{service_ip}/32", "--dport", "443"),
            *("-j", "REDIRECT", "--to-ports", str(replica.proxy.port)),
        )
        # The connections opened before the rule: from now on every one goes through the proxy.
        _nsenter(pid, "ss", "-K", "dst", service_ip, "dport", "=", ":443")
        return replica

    def uninstall(self) -> None:
        try:
            self.apps.delete_namespaced_deployment(
                DEPLOYMENT, OPERATOR_NAMESPACE, propagation_policy="Foreground"
            )
        except ApiException as exc:
            if exc.status != 404:
                raise
        wait_for(
            lambda: (
                not self.core.list_namespaced_pod(OPERATOR_NAMESPACE, label_selector=SELECTOR).items
            ),
            timeout=120,
            interval=1,
            message="the operator pods gone",
        )
