"""GitOps in the sandbox: Flux's source-controller and kustomize-controller as host processes
against the sandbox's API server, and a read-only git server (gitserver.py), all on 127.0.0.1.
Started on demand (the GitOps tests), never by `make run`.

The controllers are built from their Go modules (build.ensure_flux_binaries, FLUX_VERSION) and
their CRDs come from the same modules. They act as a client certificate of their own in
system:masters (as Flux's default install binds cluster-admin), watch every namespace, keep
leader election off (one replica each), and bind metrics, health and source-controller's
artifact server to free loopback ports; the artifact server advertises that same loopback
address, which is where kustomize-controller fetches artifacts from. Logs go to the sandbox's
logs folder (source-controller.log, kustomize-controller.log, gitserver.log).

`stop()` stops the processes, then removes the Flux objects' finalizers (nothing would remove
them once the controllers are gone, and their namespaces would never finish deleting), and
deletes the git repositories and artifacts. The CRDs stay installed.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from . import build, nodehost, pki
from .controlplane import ControlPlane
from .errors import SandboxError
from .files import tail
from .gitserver import Repository, git_binary
from .kubeapi import LOOPBACK, free_port, http_ok, kubeconfig_dict

RUNTIME_NAMESPACE = "flux-system"
IDENTITY = pki.ClientIdentity("flux", "sandbox-flux", ("system:masters",))
PROCESSES = ("gitserver", "source-controller", "kustomize-controller")
FLUX_KINDS = (
    "kustomizations.kustomize.toolkit.fluxcd.io",
    "gitrepositories.source.toolkit.fluxcd.io",
)
# Proxy settings of the environment must never send the controllers' requests elsewhere.
_PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy")


class Flux:
    """The GitOps part of one sandbox: start(), stop(), running(), repository()."""

    def __init__(self, control_plane: ControlPlane) -> None:
        self.cp = control_plane
        self.root = control_plane.state_dir / "flux"

    @property
    def kubeconfig(self) -> Path:
        return self.root / "flux.kubeconfig"

    @property
    def _state_file(self) -> Path:
        return self.root / "state.json"

    def _state(self) -> dict[str, Any]:
        try:
            data = json.loads(self._state_file.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _alive(self) -> dict[str, int]:
        """name -> pid of the recorded processes still running (checked by start time)."""
        found = {}
        for name, rec in self._state().get("processes", {}).items():
            if nodehost.proc_start_time(rec["pid"]) == rec["start"]:
                found[name] = int(rec["pid"])
        return found

    def running(self) -> bool:
        ports = self._state().get("ports", {})
        return set(self._alive()) == set(PROCESSES) and all(
            http_ok(ports[f"{name}-health"], path) for name, path in _HEALTH.items()
        )

    @property
    def git_url(self) -> str:
        return f"http://{LOOPBACK}:{self._state()['ports']['gitserver-health']}"

    def metrics_url(self, controller: str) -> str:
        """Where `controller` (source-controller, kustomize-controller) serves its metrics."""
        return f"http://{LOOPBACK}:{self._state()['ports'][f'{controller}-metrics']}/metrics"

    def repository(self, name: str) -> Repository:
        """A new, empty bare repository `name`; its URL is what a GitRepository names."""
        repo = Repository(self.root / "repos" / f"{name}.git", f"{self.git_url}/{name}.git")
        if repo.bare.exists():
            raise SandboxError(f"git repository {name} exists already")
        return repo.create()

    # -- start
    def start(self, progress: build.Progress = print, timeout: float = 60) -> Flux:
        """Build when needed, install the CRDs, start the git server and both controllers and
        wait until each answers its health probe. A no-op when all run."""
        if self.running():
            return self
        git_binary()  # fail early, naming the package, when git is missing
        bins = build.ensure_flux_binaries(progress)
        self.stop()
        self.root.mkdir(parents=True)
        (self.root / "repos").mkdir()
        (self.root / "storage").mkdir()  # source-controller wants it to exist
        self._write_kubeconfig()
        self._install_crds(bins / "crds")
        ports = {
            key: free_port()
            for key in (
                "gitserver-health",
                "storage",
                "source-controller-health",
                "source-controller-metrics",
                "kustomize-controller-health",
                "kustomize-controller-metrics",
            )
        }
        self._state_file.write_text(json.dumps({"ports": ports, "processes": {}}))
        for name in PROCESSES:
            self._spawn(name, self._command(name, bins, ports))
        self._wait_healthy(ports, timeout)
        progress(f"flux up: git server {self.git_url}, logs in {self.cp.logs_dir}")
        return self

    def _write_kubeconfig(self) -> None:
        paths = self.cp.pki
        cert, key = pki.issue(paths, IDENTITY.stem, IDENTITY.user, IDENTITY.groups)
        user = {
            "client-certificate-data": base64.b64encode(cert.read_bytes()).decode(),
            "client-key-data": base64.b64encode(key.read_bytes()).decode(),
        }
        url = self.cp.api_server_url
        if not url:
            raise SandboxError("the sandbox is not up; start it before Flux")
        config = kubeconfig_dict(url, paths.ca_cert.read_bytes(), user)
        self.kubeconfig.write_text(yaml.safe_dump(config))
        self.kubeconfig.chmod(0o600)

    def _kubectl(self, *args: str, timeout: float = 60) -> str:
        kubectl = build.bin_dir() / "kubectl"
        return nodehost.run(
            [str(kubectl), f"--kubeconfig={self.kubeconfig}", *args], timeout=timeout
        )

    def _install_crds(self, crds: Path) -> None:
        files = sorted(crds.glob("*.yaml"))
        if not files:
            raise SandboxError(f"no Flux CRDs in {crds}")
        args = [arg for f in files for arg in ("-f", str(f))]
        self._kubectl("apply", "--server-side", "--force-conflicts", *args)
        self._kubectl("wait", "--for=condition=Established", "--timeout=60s", *args)
        namespace = {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": RUNTIME_NAMESPACE},
        }
        ns_file = self.root / "namespace.yaml"
        ns_file.write_text(yaml.safe_dump(namespace))
        self._kubectl("apply", "--server-side", "-f", str(ns_file))

    def _command(self, name: str, bins: Path, ports: dict[str, int]) -> list[str]:
        if name == "gitserver":
            port = str(ports["gitserver-health"])
            return [
                sys.executable,
                "-m",
                "aidbox_sandbox.gitserver",
                str(self.root / "repos"),
                port,
            ]
        common = [
            f"--metrics-addr={LOOPBACK}:{ports[f'{name}-metrics']}",
            f"--health-addr={LOOPBACK}:{ports[f'{name}-health']}",
            "--watch-all-namespaces=true",
            "--enable-leader-election=false",
            "--log-encoding=json",
        ]
        if name == "source-controller":
            storage = f"{LOOPBACK}:{ports['storage']}"
            common += [
                f"--storage-path={self.root / 'storage'}",
                f"--storage-addr={storage}",
                f"--storage-adv-addr={storage}",
            ]
        return [str(bins / name), *common]

    def _spawn(self, name: str, command: list[str]) -> None:
        env = {k: v for k, v in os.environ.items() if k not in _PROXY_VARS}
        env.update(KUBECONFIG=str(self.kubeconfig), RUNTIME_NAMESPACE=RUNTIME_NAMESPACE)
        env["NO_PROXY"] = env["no_proxy"] = LOOPBACK
        log = self.cp.logs_dir / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as fh:
            proc = subprocess.Popen(
                command,
                stdout=fh,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd=self.root,
                env=env,
            )
        state = self._state()
        start = nodehost.proc_start_time(proc.pid)
        state["processes"][name] = {"pid": proc.pid, "start": start}
        self._state_file.write_text(json.dumps(state))

    def _wait_healthy(self, ports: dict[str, int], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        waiting = dict(_HEALTH)
        while waiting:
            for name, path in list(waiting.items()):
                if http_ok(ports[f"{name}-health"], path):
                    del waiting[name]
            dead = set(PROCESSES) - set(self._alive())
            if dead or (waiting and time.monotonic() > deadline):
                name = sorted(dead or waiting)[0]
                log = self.cp.logs_dir / f"{name}.log"
                self.stop()
                raise SandboxError(f"{name} did not start; last lines of {log}:\n{tail(log)}")
            time.sleep(0.2)

    # -- stop
    def stop(self) -> None:
        """Stop the processes, release the Flux objects' finalizers, delete repositories and
        artifacts."""
        nodehost.kill_all(set(self._alive().values()), grace=5)
        # After the controllers are gone: a running kustomize-controller would add them back.
        if self.kubeconfig.exists() and self.cp.api_server_url:
            self._drop_finalizers()
        shutil.rmtree(self.root, ignore_errors=True)

    def _drop_finalizers(self) -> None:
        for kind in FLUX_KINDS:
            try:
                listed = json.loads(self._kubectl("get", kind, "--all-namespaces", "-o", "json"))
            except (SandboxError, ValueError, subprocess.TimeoutExpired):
                continue  # the API server is gone or the CRD is not installed
            for item in listed.get("items", []):
                meta = item["metadata"]
                if not meta.get("finalizers"):
                    continue
                patch = json.dumps({"metadata": {"finalizers": None}})
                self._kubectl(
                    "patch",
                    kind,
                    meta["name"],
                    "-n",
                    meta["namespace"],
                    "--type=merge",
                    "-p",
                    patch,
                )


# name -> health probe path (the git server's port is also the one it serves on)
_HEALTH = {
    "gitserver": "/healthz",
    "source-controller": "/readyz",
    "kustomize-controller": "/readyz",
}
