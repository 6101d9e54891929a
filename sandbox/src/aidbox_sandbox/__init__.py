"""A real local Kubernetes control plane for tests: etcd, kube-apiserver,
kube-controller-manager and kube-scheduler built from pinned source modules, with kwok
simulating nodes and kubelets. Everything listens on 127.0.0.1 only. See docs/sandbox.md.
"""

from .build import ETCD_VERSION, KUBERNETES_VERSION, KWOK_VERSION
from .controlplane import (
    NOT_READY_LABEL,
    ZONE_LABEL,
    ZONES,
    ProcessStatus,
    SandboxStatus,
)
from .errors import PortBusyError, SandboxError
from .sandbox import Sandbox

__all__ = [
    "ETCD_VERSION",
    "KUBERNETES_VERSION",
    "KWOK_VERSION",
    "NOT_READY_LABEL",
    "ZONES",
    "ZONE_LABEL",
    "PortBusyError",
    "ProcessStatus",
    "Sandbox",
    "SandboxError",
    "SandboxStatus",
]
