"""Debian packages a real node needs (containerd, runc, CNI plugins, iptables, conntrack, socat,
util-linux's unshare/nsenter, iproute2), installed with apt-get when one is missing. Needs root,
like everything else a real node does."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from .errors import SandboxError

# command or file that proves the package is there -> Debian package
REQUIRED = {
    "containerd": "containerd",
    "ctr": "containerd",
    "runc": "runc",
    "/usr/lib/cni/bridge": "containernetworking-plugins",
    "iptables": "iptables",
    "conntrack": "conntrack",
    "socat": "socat",
    "ip": "iproute2",
    "unshare": "util-linux",
    "nsenter": "util-linux",
}


def missing_packages() -> list[str]:
    missing = set()
    for what, package in REQUIRED.items():
        found = Path(what).exists() if what.startswith("/") else shutil.which(what)
        if not found:
            missing.add(package)
    return sorted(missing)


def apt_install(packages: list[str], progress: Callable[[str], None] = print) -> None:
    """apt-get update, then install `packages` (root only)."""
    if os.geteuid() != 0:
        raise SandboxError(
            f"this needs root and the Debian packages {' '.join(packages)} "
            f"(apt-get install -y {' '.join(packages)})"
        )
    progress(f"installing Debian packages: {' '.join(packages)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for args in (
        ["apt-get", "update", "-q"],
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages],
    ):
        result = subprocess.run(args, capture_output=True, text=True, env=env, check=False)
        if result.returncode != 0:
            raise SandboxError(f"`{' '.join(args)}` failed:\n{result.stdout[-2000:]}")


def ensure_packages(progress: Callable[[str], None] = print) -> None:
    """Install what real nodes need and is missing (once per machine; ~10-20 s)."""
    missing = missing_packages()
    if not missing:
        return
    apt_install(missing, progress)
    still = missing_packages()
    if still:
        raise SandboxError(f"apt-get ran but {still} are still missing")
