"""metrics-server as a host process beside the sandbox's control plane: the metrics.k8s.io API
that the HorizontalPodAutoscaler controller (in kube-controller-manager) and `kubectl top` read.

It listens on 127.0.0.1 only, with a serving certificate of the sandbox CA for the Service's
name, metrics-server.kube-system.svc (the APIService carries that CA, so the API server
verifies it). The API server reaches it through the
aggregation layer the sandbox configures (controlplane.aggregation_flags): the APIService names
a Service of type ExternalName `localhost`, which the API server's default routing dials as
localhost:<port>. A Service with an Endpoints/EndpointSlice of 127.0.0.1 cannot be made (the API
refuses loopback endpoint addresses), and aggregator routing stays off.

It scrapes the real nodes' kubelets on their node IPs (the host side of each node's veth, as
the API server does for logs and exec) with a sandbox-CA client certificate, and only the real
nodes (a node selector): the kwok nodes' addresses route nowhere and must get no packet.
"""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from aidbox_sandbox import pki
from aidbox_sandbox.kubeapi import free_port, kubeconfig_dict
from aidbox_sandbox.nodeconfig import REAL_NODE_LABEL

NAME = "metrics-server"
NAMESPACE = "kube-system"
API_SERVICE = "v1beta1.metrics.k8s.io"
# The shortest resolution metrics-server accepts (a pod has metrics after two scrapes); it must
# exceed the timeout of one scrape of a kubelet.
RESOLUTION = "10s"
SCRAPE_TIMEOUT = "5s"


class MetricsServer:
    """One metrics-server process and its registration; `stop()` removes both."""

    def __init__(self, binary: Path, sandbox: Any, workdir: Path) -> None:
        self.binary = binary
        self.sandbox = sandbox
        self.workdir = workdir
        self.port = free_port()
        self.log_path = workdir / "metrics-server.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, api: client.ApiClient) -> None:
        args = self._args(*self._credentials())
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [str(self.binary), *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self._register(api)

    def _credentials(self) -> tuple[Path, Path, Path]:
        """A kubeconfig, and the client certificate and key it and the kubelet scrapes use."""
        paths = self.sandbox.pki
        self.workdir.mkdir(parents=True, exist_ok=True)
        # system:masters like the sandbox's kwok: a dev-only helper on the host, not a workload.
        cert, key = pki.issue(
            paths, "metrics-server", "sandbox-metrics-server", ("system:masters",)
        )
        user = {"client-certificate": str(cert), "client-key": str(key)}
        kubeconfig = self.workdir / "metrics-server.kubeconfig"
        config = kubeconfig_dict(self.sandbox.api_server_url, paths.ca_cert.read_bytes(), user)
        kubeconfig.write_text(yaml.safe_dump(config))
        kubeconfig.chmod(0o600)
        return kubeconfig, cert, key

    def _args(self, kubeconfig: Path, cert: Path, key: Path) -> list[str]:
        paths = self.sandbox.pki
        # The API server checks the name of the Service it was given, not the host it dials.
        serving_cert, serving_key = pki.issue(
            paths, "metrics-server-serving", NAME, server_dns=(f"{NAME}.{NAMESPACE}.svc",)
        )
        return [
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1",
            f"--secure-port={self.port}",
            f"--tls-cert-file={serving_cert}",
            f"--tls-private-key-file={serving_key}",
            "--kubelet-preferred-address-types=InternalIP",
            f"--kubelet-certificate-authority={paths.ca_cert}",
            f"--kubelet-client-certificate={cert}",
            f"--kubelet-client-key={key}",
            f"--node-selector={REAL_NODE_LABEL}=true",
            f"--metric-resolution={RESOLUTION}",
            f"--kubelet-request-timeout={SCRAPE_TIMEOUT}",
            "--profiling=false",
        ]

    def _register(self, api: client.ApiClient) -> None:
        service = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": NAME, "namespace": NAMESPACE},
            "spec": {
                "type": "ExternalName",
                "externalName": "localhost",
                "ports": [{"name": "https", "port": self.port}],
            },
        }
        api_service = {
            "apiVersion": "apiregistration.k8s.io/v1",
            "kind": "APIService",
            "metadata": {"name": API_SERVICE},
            "spec": {
                "group": "metrics.k8s.io",
                "version": "v1beta1",
                "service": {"namespace": NAMESPACE, "name": NAME, "port": self.port},
                "caBundle": base64.b64encode(self.sandbox.pki.ca_cert.read_bytes()).decode(),
                "groupPriorityMinimum": 100,
                "versionPriority": 100,
            },
        }
        self._unregister(api)
        client.CoreV1Api(api).create_namespaced_service(NAMESPACE, service)
        client.ApiregistrationV1Api(api).create_api_service(api_service)

    def _unregister(self, api: client.ApiClient) -> None:
        for delete in (
            lambda: client.ApiregistrationV1Api(api).delete_api_service(API_SERVICE),
            lambda: client.CoreV1Api(api).delete_namespaced_service(NAME, NAMESPACE),
        ):
            try:
                delete()
            except ApiException as err:
                if err.status != 404:
                    raise

    def exited(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None

    def available(self, api: client.ApiClient) -> bool:
        """The API server's own verdict: it reached metrics-server's discovery."""
        found = client.ApiregistrationV1Api(api).read_api_service(API_SERVICE)
        conditions = found.status.conditions or []
        return any(c.type == "Available" and c.status == "True" for c in conditions)

    def check_alive(self) -> None:
        if self.exited():
            raise AssertionError(
                f"metrics-server exited ({self.proc.returncode}); log {self.log_path}:\n"
                + "\n".join(self.log_path.read_text(errors="replace").splitlines()[-20:])
            )

    def stop(self, api: client.ApiClient) -> None:
        self._unregister(api)
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
