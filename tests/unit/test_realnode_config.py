"""Pure checks of the real nodes' generated configuration (no node is started)."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

from aidbox_sandbox import nodehost
from aidbox_sandbox.nodeconfig import (
    REAL_NODE_TAINT,
    cni_conflist,
    containerd_toml,
    kube_proxy_config,
    kubelet_config,
    plan,
)


def test_names_are_unique_per_sandbox_and_fit_the_kernel_limits(tmp_path: Path) -> None:
    a = plan(tmp_path / "a", tmp_path / "a" / "realnodes", 1, 7, "zone-b")
    b = plan(tmp_path / "b", tmp_path / "b" / "realnodes", 1, 7, "zone-b")
    assert a.host_if != b.host_if and a.cgroup != b.cgroup
    assert len(a.host_if) <= 15, "Linux interface names have at most 15 characters"
    assert (a.host_ip, a.node_ip) == ("10.254.7.5", "10.254.7.6"), "one /30 per node"
    assert a.pod_cidr == "10.245.1.0/24" and a.pod_gateway == "10.245.1.1"


def test_node_daemons_leave_host_wide_settings_alone(tmp_path: Path) -> None:
    node = plan(tmp_path, tmp_path / "realnodes", 0, 3, "zone-a")
    kubelet = kubelet_config(node, tmp_path / "ca", tmp_path / "crt", tmp_path / "key")
    assert kubelet["cgroupRoot"] == f"/{node.cgroup}" and kubelet["cgroupDriver"] == "cgroupfs"
    assert kubelet["registerWithTaints"] == [REAL_NODE_TAINT]
    assert kubelet["oomScoreAdj"] == 0
    assert kubelet["authentication"]["anonymous"] == {"enabled": False}
    proxy = kube_proxy_config(node, tmp_path / "kc")
    assert proxy["conntrack"] == {
        "maxPerCore": 0,
        "min": 0,
        "tcpEstablishedTimeout": "0s",
        "tcpCloseWaitTimeout": "0s",
    }
    toml = containerd_toml(node)
    for setting in ("restrict_oom_score_adj = true", "SystemdCgroup = false", '"/usr/lib/cni"'):
        assert setting in toml
    assert str(node.containerd_socket) in toml
    bridge = cni_conflist(node)["plugins"][0]
    assert bridge["ipMasq"] is False and bridge["ipam"]["ranges"][0][0]["subnet"] == node.pod_cidr


def test_holder_masks_every_sysctl_the_kubelet_writes(tmp_path: Path) -> None:
    script = nodehost.holder_script(tmp_path)
    for key in nodehost.KUBELET_SYSCTLS:
        assert f"/proc/sys/{key}" in script
    # resolv.conf may be a link into /run: bound before /run becomes the node's own tmpfs.
    own_run = "mount -t tmpfs -o mode=0755 aidbox-node /run"
    assert script.index("/etc/resolv.conf") < script.index(own_run)


def test_reading_a_cgroup_tree_skips_cgroups_that_vanish_meanwhile(tmp_path: Path) -> None:
    """Containers' cgroups are removed by their shims at any moment, also while `down` or the
    host-state check reads the tree (CI once failed with FileNotFoundError from `rglob`). A
    thread creates and removes nested directories while the tree is read again and again."""
    import threading

    stop = threading.Event()

    def churn() -> None:
        while not stop.is_set():
            for i in range(20):
                (tmp_path / "kubepods" / f"pod{i}" / "c").mkdir(parents=True, exist_ok=True)
            for i in range(20):
                for below in ("c", ""):
                    with contextlib.suppress(OSError):
                        (tmp_path / "kubepods" / f"pod{i}" / below).rmdir()

    churner = threading.Thread(target=churn)
    churner.start()
    try:
        seen: set[str] = set()
        reads, deadline = 0, time.monotonic() + 20
        # At least 300 reads, and on until one caught a nested cgroup (a loaded machine may
        # run the churning thread seldom).
        while reads < 300 or not any(s.endswith("/c") for s in seen):
            seen |= {p.relative_to(tmp_path).as_posix() for p in nodehost.cgroup_tree(tmp_path)}
            reads += 1
            if time.monotonic() > deadline:
                break
    finally:
        stop.set()
        churner.join()
    assert any(s.endswith("/c") for s in seen), "the churn was read while it ran"
    assert nodehost.cgroup_tree(tmp_path / "gone") == []
