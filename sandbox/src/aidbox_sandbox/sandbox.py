"""The sandbox as tests, the benchmark and the CLI use it: the control plane (controlplane.py)
and, when asked for, real kubelet nodes (realnode.py), an OCI registry (registry.py) and Flux
with a git server (flux.py), started and stopped together.

`up()` holds a lock, starts the control plane (building binaries first; after a crash cleaning
up, then one retry with new ports if a chosen one was taken), then the registry and the real
nodes, and connects the nodes to the registry. `down()` removes the real nodes while the API
server still answers, then the registry, then the control plane.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

from . import build, pki
from .controlplane import ControlPlane, Progress, SandboxStatus
from .errors import PortBusyError
from .files import file_lock
from .flux import Flux
from .kubeapi import KubeApi
from .realnode import RealNodes, kubelet_access_flags
from .registry import Registry

DEFAULT_NODES = 3


def default_state_dir() -> Path:
    env = os.environ.get("AIDBOX_SANDBOX_DIR")
    if env:
        return Path(env).expanduser()
    return build.cache_root() / "sandbox"


class Sandbox:
    """A local cluster. `up()` builds (first time), starts and waits; `down()` stops."""

    def __init__(
        self,
        state_dir: Path | None = None,
        nodes: int | None = None,
        real_nodes: int | None = None,
        registry: bool | None = None,
    ) -> None:
        state = (state_dir or default_state_dir()).expanduser().resolve()
        if nodes is None:
            nodes = int(os.environ.get("AIDBOX_SANDBOX_NODES", DEFAULT_NODES))
        self.control_plane = ControlPlane(state, nodes)
        if real_nodes is None:  # real kubelet nodes (realnode.py); none by default
            real_nodes = int(os.environ.get("AIDBOX_SANDBOX_REAL_NODES", "0"))
        self.real_nodes = real_nodes
        if registry is None:  # the OCI registry (registry.py); off by default
            registry = os.environ.get("AIDBOX_SANDBOX_REGISTRY", "") not in ("", "0")
        self.with_registry = registry
        self.registry = Registry(state)
        self.flux = Flux(self.control_plane)

    # -- the control plane's paths and API
    @property
    def state_dir(self) -> Path:
        return self.control_plane.state_dir

    @property
    def nodes(self) -> int:
        return self.control_plane.nodes

    @property
    def kubeconfig(self) -> Path:
        return self.control_plane.kubeconfig

    @property
    def audit_log(self) -> Path:
        return self.control_plane.audit_log

    @property
    def bin_dir(self) -> Path:
        return self.control_plane.bin_dir

    @property
    def logs_dir(self) -> Path:
        return self.control_plane.logs_dir

    @property
    def pki(self) -> pki.PkiPaths:
        return self.control_plane.pki

    @property
    def etcd_data_dir(self) -> Path:
        return self.control_plane.etcd_data_dir

    @property
    def api_server_url(self) -> str | None:
        return self.control_plane.api_server_url

    def api(self) -> KubeApi:
        """A client of the running API server, authenticated as the sandbox admin."""
        return self.control_plane.api()

    def status(self) -> SandboxStatus:
        return self.control_plane.status()

    # -- stop
    def down(self) -> None:
        """Stop everything this sandbox started and remove its state (tmpfs included)."""
        self.flux.stop()  # while the API server still answers
        RealNodes(self.control_plane).down()
        self.registry.stop()
        self.control_plane.down()

    # -- start
    @contextlib.contextmanager
    def _flock(self, suffix: str, mode: int) -> Iterator[bool]:
        """flock a file next to the state folder (it outlives down()); yields False if a
        non-blocking lock was refused."""
        with file_lock(self.state_dir.parent / f".{self.state_dir.name}.{suffix}", mode) as got:
            yield got

    @contextlib.contextmanager
    def session(self, progress: Progress = print) -> Iterator[Sandbox]:
        """Use the sandbox for a while (e.g. a pytest session): up() on entry; on exit, down()
        only if it was not running before and no other session is still using it."""
        with self._flock("users", fcntl.LOCK_SH):
            was_running = self.status().running
            self.up(progress)
            yield self
        if was_running:
            return
        with self._flock("users", fcntl.LOCK_EX | fcntl.LOCK_NB) as alone:
            if alone:
                self.down()
            else:
                progress("sandbox left running: another session is still using it")

    def up(self, progress: Progress = print) -> None:
        """Build if needed, start everything and wait until the API and all nodes are ready."""
        with self._flock("up.lock", fcntl.LOCK_EX):
            self._up_control_plane(progress)
            if self.with_registry:
                self.registry.start(progress)
            if self.real_nodes:
                RealNodes(self.control_plane).up(self.real_nodes, progress)
                if self.registry.running():
                    RealNodes(self.control_plane).connect_registry(self.registry.port)

    # -- the OCI registry, also for a sandbox started without it
    def start_registry(self, progress: Progress = print) -> Registry:
        """Start the registry (no-op when it runs) and connect the running real nodes to it."""
        with self._flock("up.lock", fcntl.LOCK_EX):
            self.registry.start(progress)
            nodes = RealNodes(self.control_plane)
            if nodes.names():
                nodes.connect_registry(self.registry.port)
        return self.registry

    def stop_registry(self) -> None:
        """Disconnect the real nodes from the registry and stop it (its storage goes too)."""
        with self._flock("up.lock", fcntl.LOCK_EX):
            RealNodes(self.control_plane).disconnect_registry()
            self.registry.stop()

    @contextlib.contextmanager
    def registry_session(self, progress: Progress = print) -> Iterator[Registry]:
        """The registry for a while (e.g. a test module): started on entry; stopped on exit
        unless it ran before."""
        was_running = self.registry.running()
        registry = self.start_registry(progress)
        try:
            yield registry
        finally:
            if not was_running:
                self.stop_registry()

    # -- GitOps: Flux's controllers and a git server (flux.py), on demand only
    @contextlib.contextmanager
    def flux_session(self, progress: Progress = print) -> Iterator[Flux]:
        """Flux for a while (e.g. a test suite): started on entry; stopped on exit unless it
        ran before."""
        with self._flock("up.lock", fcntl.LOCK_EX):
            was_running = self.flux.running()
            self.flux.start(progress)
        try:
            yield self.flux
        finally:
            if not was_running:
                self.flux.stop()

    def _up_control_plane(self, progress: Progress) -> None:
        cp = self.control_plane
        if cp.status().running:
            progress(f"sandbox already up: {cp.api_server_url} (kubeconfig {cp.kubeconfig})")
            return
        bins = build.ensure_binaries(progress)
        if cp.has_state():
            progress("cleaning up stale sandbox state")
            self.down()
        started = time.monotonic()
        for attempt in (1, 2):
            try:
                cp.start(bins, progress, kubelet_access_flags(cp.pki))
                break
            except PortBusyError:
                self.down()
                if attempt == 2:
                    raise
                progress("a chosen port was taken meanwhile; retrying with new ports")
            except BaseException:
                cp.stop_processes()
                raise
        progress(
            f"sandbox up in {time.monotonic() - started:.1f}s: {cp.api_server_url}, "
            f"{cp.nodes} nodes; export KUBECONFIG={cp.kubeconfig}"
        )

    # -- fault injection: stop and start one control-plane process (same flags, same ports)
    def stop_component(self, name: str) -> None:
        """Stop etcd or kube-apiserver (SIGTERM, then SIGKILL after 5 s); start_component
        brings it back as it was."""
        self.control_plane.stop_component(name)

    def start_component(self, name: str, timeout: float = 90.0) -> None:
        """Start a component stopped by stop_component and wait until it serves."""
        self.control_plane.start_component(name, timeout)

    def restart_component(self, name: str, down_seconds: float = 0.0) -> None:
        self.control_plane.restart_component(name, down_seconds)

    # -- kubeconfigs for other identities
    def write_token_kubeconfig(self, path: Path, token: str) -> Path:
        """A kubeconfig with the sandbox's server and CA that authenticates with a bearer token."""
        return self.control_plane.write_token_kubeconfig(path, token)
