"""A snapshot of host state a real node could change: sysctls, the host netns's firewall,
links, addresses and routes, mounts, cgroups, and the well-known paths of the node's daemons."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from aidbox_sandbox.nodehost import cgroup_tree

# Change by themselves from one reading to the next.
VOLATILE = re.compile(
    r"^(fs\.(dentry-state|file-nr|inode-nr|inode-state|quota\..*)|kernel\.(ns_last_pid|random\..*"
    r"|pty\.nr|sched_domain\..*)|net\.netfilter\.nf_conntrack_count|.*\.stable_secret)$"
)
PATHS = (
    "/etc/cni",
    "/var/lib/cni",
    "/opt/cni",
    "/opt/containerd",
    "/var/lib/containerd",
    "/run/containerd",
    "/var/lib/kubelet",
    "/var/log/pods",
    "/var/log/containers",
    "/run/netns",
    "/var/run/netns",
)


def _run(args: list[str]) -> str:
    return subprocess.run(args, capture_output=True, text=True, check=False).stdout


def sysctls() -> dict[str, str]:
    out = {}
    for line in _run(["sysctl", "-a"]).splitlines():
        key, _, value = line.partition(" = ")
        if not VOLATILE.match(key):
            out[key] = value
    return out


def _firewall() -> list[str]:
    rules = []
    for tool in ("iptables-save", "ip6tables-save"):
        rules += [
            re.sub(r"\[\d+:\d+\]", "", line)
            for line in _run([tool]).splitlines()
            if not line.startswith("#")
        ]
    rules += _run(["nft", "list", "ruleset"]).splitlines() if Path("/usr/sbin/nft").exists() else []
    return rules


def _mounts() -> list[str]:
    lines = Path("/proc/self/mountinfo").read_text().splitlines()
    # mount point, options, fs type, source (mount IDs differ between readings)
    return sorted(
        " ".join(line.split()[4:6] + line.split(" - ", 1)[1].split()[:2]) for line in lines
    )


def _cgroups() -> list[str]:
    """Every cgroup at the top of each hierarchy, and every aidbox/kubepods one anywhere."""
    root = Path("/sys/fs/cgroup")
    found = []
    for hierarchy in root.iterdir():
        if not (hierarchy / "cgroup.procs").exists():
            continue
        found += [str(p) for p in hierarchy.iterdir() if p.is_dir()]
        # Pods' cgroups come and go while this reads; a vanishing one is skipped by walk().
        found += [str(p) for p in cgroup_tree(hierarchy) if p.name.startswith("kubepods")]
    return sorted(found)


@dataclass
class HostState:
    sysctls: dict[str, str]
    firewall: list[str]
    links: list[str]
    addresses: list[str]
    routes: list[str]
    mounts: list[str]
    cgroups: list[str]
    paths: dict[str, bool] = field(default_factory=dict)


def snapshot() -> HostState:
    links = sorted(
        line.split()[0].split("@")[0] for line in _run(["ip", "-br", "link"]).splitlines()
    )
    return HostState(
        sysctls=sysctls(),
        firewall=_firewall(),
        links=links,
        addresses=sorted(_run(["ip", "-o", "addr"]).splitlines()),
        routes=sorted(_run(["ip", "route", "show", "table", "all"]).splitlines()),
        mounts=_mounts(),
        cgroups=_cgroups(),
        paths={p: Path(p).exists() for p in PATHS},
    )


def differences(before: HostState, after: HostState, ignore: str | None = None) -> list[str]:
    """Human-readable differences; `ignore` is a regex for lines that may differ (e.g. the
    names of the node's own host-side veths while the node is up)."""
    skip = re.compile(ignore) if ignore else None
    found = []
    for key in sorted(set(before.sysctls) | set(after.sysctls)):
        if before.sysctls.get(key) != after.sysctls.get(key) and not (skip and skip.search(key)):
            found.append(f"sysctl {key}: {before.sysctls.get(key)} -> {after.sysctls.get(key)}")
    for name in ("firewall", "links", "addresses", "routes", "mounts", "cgroups"):
        old, new = getattr(before, name), getattr(after, name)
        for line in sorted(set(old) ^ set(new)):
            if skip and skip.search(line):
                continue
            found.append(f"{name} {'-' if line in old else '+'} {line}")
    for path, existed in before.paths.items():
        if after.paths.get(path) != existed:
            found.append(f"path {path}: existed {existed} -> {after.paths.get(path)}")
    return found
