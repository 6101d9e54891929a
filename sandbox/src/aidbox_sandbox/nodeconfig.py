"""Configuration files of a real node: containerd, CNI, kubelet, kube-proxy (pure functions)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .images import PAUSE_IMAGE

REAL_NODE_LABEL = "sandbox.aidbox.io/real-node"
# Only pods that tolerate this land on real nodes; kwok nodes stay the default place.
REAL_NODE_TAINT = {"key": REAL_NODE_LABEL, "value": "true", "effect": "NoSchedule"}
POD_NETWORK = "10.245.0.0/16"
# No Service answers here: pods' DNS queries stay inside the node's netns and go nowhere.
CLUSTER_DNS = "10.96.0.10"


def identity(state_dir: Path) -> str:
    """A short id of one sandbox, so several sandboxes on one machine never share a name."""
    return hashlib.sha256(str(state_dir).encode()).hexdigest()[:8]


@dataclass(frozen=True)
class NodePlan:
    index: int
    name: str
    dir: Path
    host_if: str
    host_ip: str
    node_ip: str
    pod_cidr: str
    cgroup: str
    zone: str

    @property
    def containerd_socket(self) -> Path:
        return self.dir / "containerd.sock"

    @property
    def registry_hosts_dir(self) -> Path:
        return registry_hosts_dir(self.dir)

    @property
    def pod_gateway(self) -> str:
        return self.pod_cidr.replace(".0/24", ".1")


def plan(state_dir: Path, root: Path, index: int, subnet: int, zone: str) -> NodePlan:
    ident = identity(state_dir)
    base = 4 * index
    return NodePlan(
        index=index,
        name=f"real-node-{index}",
        dir=root / f"n{index}",
        host_if=f"abx{ident[:6]}n{index}",
        host_ip=f"10.254.{subnet}.{base + 1}",
        node_ip=f"10.254.{subnet}.{base + 2}",
        pod_cidr=f"10.245.{index}.0/24",
        cgroup=f"aidbox-{ident}-n{index}",
        zone=zone,
    )


def containerd_toml(node: NodePlan) -> str:
    # root/state stay at containerd's defaults: /var/lib and /run are the node's private tmpfs.
    return f"""version = 2
root = "/var/lib/containerd"
state = "/run/containerd"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.tracing.processor.v1.otlp"]

[grpc]
  address = "{node.containerd_socket}"

[plugins."io.containerd.internal.v1.opt"]
  path = "/var/lib/containerd-opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  restrict_oom_score_adj = true
  disable_apparmor = true
  netns_mounts_under_state_dir = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{node.dir / "cni"}"
  # <host:port>/hosts.toml per registry (registry_hosts_toml); empty unless a registry runs.
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "{node.registry_hosts_dir}"
"""


def registry_hosts_dir(node_dir: Path) -> Path:
    """containerd's registry host configuration folder of a node."""
    return node_dir / "certs.d"


def registry_hosts_toml(host: str) -> str:
    """containerd's hosts.toml for the sandbox's registry at `host` (127.0.0.1:<port> in the
    node's netns, a relay to the registry on the host's loopback): plain HTTP, pull only."""
    return f"""server = "http://{host}"

[host."http://{host}"]
  capabilities = ["pull", "resolve"]
"""


def cni_conflist(node: NodePlan) -> dict[str, Any]:
    return {
        "cniVersion": "0.4.0",
        "name": "aidbox-sandbox",
        "plugins": [
            {
                "type": "bridge",
                "bridge": "cni0",
                "isGateway": True,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": node.pod_cidr, "gateway": node.pod_gateway}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                },
            }
        ],
    }


def kubelet_config(node: NodePlan, ca: Path, cert: Path, key: Path) -> dict[str, Any]:
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": node.node_ip,
        "port": 10250,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "tlsCertFile": str(cert),
        "tlsPrivateKeyFile": str(key),
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": False},
            "x509": {"clientCAFile": str(ca)},
        },
        # Only holders of a sandbox-CA certificate get past authentication.
        "authorization": {"mode": "AlwaysAllow"},
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": f"/{node.cgroup}",
        "failCgroupV1": False,
        "failSwapOn": False,
        "oomScoreAdj": 0,
        "containerRuntimeEndpoint": f"unix://{node.containerd_socket}",
        "clusterDomain": "cluster.local",
        "clusterDNS": [CLUSTER_DNS],
        "resolvConf": str(node.dir / "resolv.conf"),
        "registerWithTaints": [REAL_NODE_TAINT],
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "1%",
            "imagefs.available": "1%",
            "nodefs.inodesFree": "1%",
        },
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "serializeImagePulls": False,
        "maxPods": 40,
        "nodeStatusUpdateFrequency": "5s",
        "syncFrequency": "10s",
        "shutdownGracePeriod": "0s",
        # A crashed container comes back within 2 s instead of after a back-off growing to
        # 5 min (beta KubeletCrashLoopBackOffMax): tests that kill the operator's container
        # again and again measure the operator, not the kubelet's back-off.
        "crashLoopBackOff": {"maxContainerRestartPeriod": "2s"},
        "rotateCertificates": False,
        "serverTLSBootstrap": False,
        "protectKernelDefaults": False,
    }


def kube_proxy_config(node: NodePlan, kubeconfig: Path) -> dict[str, Any]:
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "hostnameOverride": node.name,
        "mode": "iptables",
        "clusterCIDR": POD_NETWORK,
        "bindAddress": node.node_ip,
        "healthzBindAddress": "127.0.0.1:10256",
        "metricsBindAddress": "127.0.0.1:10249",
        # Zero leaves the machine-wide conntrack sysctls as they are.
        "conntrack": {
            "maxPerCore": 0,
            "min": 0,
            "tcpEstablishedTimeout": "0s",
            "tcpCloseWaitTimeout": "0s",
        },
        "iptables": {"localhostNodePorts": False},
    }


def node_labels(node: NodePlan) -> str:
    return ",".join(
        [
            f"{REAL_NODE_LABEL}=true",
            f"topology.kubernetes.io/zone={node.zone}",
            "topology.kubernetes.io/region=sandbox",
        ]
    )


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2))
