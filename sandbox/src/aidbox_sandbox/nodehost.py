"""The host side of a real node: the namespaces that confine it, its links, its cgroups, and
finding and stopping every process that belongs to it.

Each node lives in a holder process started by `unshare --net --mount --propagation slave`. Its
mount namespace gets private tmpfs on /run, /var/lib and /var/log (containerd's and the kubelet's
state, so nothing lands on the host's disk), a fresh sysfs for its network namespace with the
host's cgroup tree bound back under it, files with the kubelet's expected values bound over the
kernel sysctls the kubelet would otherwise set host-wide, and a resolver file pointing at an
address that routes nowhere. Every node process is started with nsenter into those namespaces.
The netns has no way out: its default route is a bridge without ports, it reaches the host only
over its own veth /30 (the API server reaches the kubelet there), and the API server through a
unix-socket relay. Killing every process in the node's mount namespace ends the namespaces, and
with them the veth pairs, the pods' netns and the tmpfs mounts.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .errors import SandboxError

CGROUP_FS = Path("/sys/fs/cgroup")
# What the kubelet writes host-wide at start (pkg/kubelet/cm setupKernelTunables) and the value
# it wants: shown to it through files bound over /proc/sys in the node's mount namespace.
KUBELET_SYSCTLS = {
    "vm/overcommit_memory": "1",
    "vm/panic_on_oom": "0",
    "kernel/panic": "10",
    "kernel/panic_on_oops": "1",
    "kernel/keys/root_maxkeys": "1000000",
    "kernel/keys/root_maxbytes": "25000000",
}
PRIVATE_TMPFS = ("/var/lib", "/var/log")  # plus /run, mounted first


def run(args: list[str], check: bool = True, timeout: float = 30) -> str:
    result = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise SandboxError(f"`{shlex.join(args)}` failed: {result.stderr.strip()}")
    return result.stdout


def in_node(holder: int, args: list[str], check: bool = True, timeout: float = 30) -> str:
    return run(["nsenter", f"--target={holder}", "--mount", "--net", "--", *args], check, timeout)


def proc_start_time(pid: int) -> int | None:
    """Start time (clock ticks since boot) of a live, non-zombie process, else None: with the
    pid it tells a process the sandbox started from a later one that reuses the pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    return None if fields[0] in ("Z", "X") else int(fields[19])


def ns_inode(pid: int, kind: str) -> int | None:
    try:
        return os.stat(f"/proc/{pid}/ns/{kind}").st_ino
    except OSError:
        return None


# ---------------------------------------------------------------- holder


def holder_script(node_dir: Path) -> str:
    """Shell run by the holder inside its new namespaces; ends sleeping forever."""
    q = shlex.quote
    lines = ["set -e"]
    resolv = node_dir / "resolv.conf"
    lines.append(f"mount --bind {q(str(resolv))} /etc/resolv.conf")
    for key in KUBELET_SYSCTLS:
        lines.append(f"mount --bind {q(str(node_dir / 'sysctl' / key))} /proc/sys/{key}")
    lines += [
        "mount -t tmpfs -o mode=0755 aidbox-node /run",
        "mkdir /run/.cgroup",
        f"mount --rbind {CGROUP_FS} /run/.cgroup",
        "mount -t sysfs sysfs /sys",
        f"mount --rbind /run/.cgroup {CGROUP_FS}",
        "umount -l /run/.cgroup",
        "rmdir /run/.cgroup",
    ]
    lines += [f"mount -t tmpfs -o mode=0755 aidbox-node {d}" for d in PRIVATE_TMPFS]
    lines += [
        "ip link set lo up",
        f"touch {q(str(node_dir / 'holder.ready'))}",
        # The shell stays (not exec): its command line names the node folder, so a later
        # down() finds the holder even if the recorded state is gone.
        "while :; do sleep 3600; done",
    ]
    return "\n".join(lines)


HOLDER_MARK = "aidbox-node-holder"


def write_holder_files(node_dir: Path, nameserver: str) -> None:
    (node_dir / "resolv.conf").write_text(
        f"nameserver {nameserver}\nsearch svc.cluster.local cluster.local\noptions ndots:5\n"
    )
    for key, value in KUBELET_SYSCTLS.items():
        path = node_dir / "sysctl" / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(value + "\n")


def start_holder(node_dir: Path, log: Path) -> int:
    """Start the holder and wait until its mounts are in place; return its pid."""
    ready = node_dir / "holder.ready"
    ready.unlink(missing_ok=True)
    for folder in PRIVATE_TMPFS:
        if str(node_dir).startswith(folder + "/") or str(node_dir).startswith("/run/"):
            raise SandboxError(
                f"the sandbox state folder {node_dir} is under {folder}, which a real node "
                "mounts a private tmpfs over; choose another AIDBOX_SANDBOX_DIR"
            )
    with log.open("ab") as fh:
        proc = subprocess.Popen(
            [
                "unshare",
                "--net",
                "--mount",
                "--propagation",
                "slave",
                "--",
                "/bin/sh",
                "-c",
                holder_script(node_dir),
                HOLDER_MARK,
                str(node_dir),
            ],
            stdout=fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    deadline = time.monotonic() + 20
    while not ready.exists():
        if proc.poll() is not None:
            raise SandboxError(f"the node holder exited ({proc.returncode}); see {log}")
        if time.monotonic() > deadline:
            raise SandboxError(f"the node holder did not get ready; see {log}")
        time.sleep(0.05)
    return proc.pid


# ---------------------------------------------------------------- links


@dataclass(frozen=True)
class NodeLink:
    holder: int
    host_if: str
    host_ip: str  # host end of the /30
    node_ip: str  # node end: the node's InternalIP


def link_host(link: NodeLink) -> None:
    """The veth /30 between host and node, and the node's portless-bridge default route."""
    delete_link(link.host_if)
    run(["ip", "link", "add", link.host_if, "type", "veth", "peer", "name", "eth0", "netns",
         str(link.holder)])  # fmt: skip
    run(["ip", "addr", "add", f"{link.host_ip}/30", "dev", link.host_if])
    run(["ip", "link", "set", link.host_if, "up"])
    for args in (
        ["ip", "addr", "add", f"{link.node_ip}/30", "dev", "eth0"],
        ["ip", "link", "set", "eth0", "up"],
        ["ip", "link", "add", "blackhole0", "type", "bridge"],
        ["ip", "link", "set", "blackhole0", "up"],
        ["ip", "route", "add", "default", "dev", "blackhole0"],
        ["sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"],
    ):
        in_node(link.holder, args)


def link_nodes(
    a: tuple[int, str, str], b: tuple[int, str, str], pair: int, a_name: str, b_name: str
) -> None:
    """A veth /30 straight between two nodes' netns (never in the host's), with routes to each
    other's pod network and InternalIP: the host forwards nothing. a and b are (holder pid,
    pod CIDR, InternalIP)."""
    a_ip, b_ip = f"10.253.{pair}.1", f"10.253.{pair}.2"
    in_node(a[0], ["ip", "link", "add", b_name, "type", "veth", "peer", "name", a_name,
                   "netns", str(b[0])])  # fmt: skip
    for holder, name, ip, peer_ip, peer in (
        (a[0], b_name, a_ip, b_ip, b),
        (b[0], a_name, b_ip, a_ip, a),
    ):
        in_node(holder, ["ip", "addr", "add", f"{ip}/30", "dev", name])
        in_node(holder, ["ip", "link", "set", name, "up"])
        in_node(holder, ["ip", "route", "add", peer[1], "via", peer_ip])
        in_node(holder, ["ip", "route", "add", f"{peer[2]}/32", "via", peer_ip])


def delete_link(name: str) -> None:
    if Path(f"/sys/class/net/{name}").exists():
        run(["ip", "link", "del", name], check=False)


def used_ipv4_networks() -> str:
    return run(["ip", "-4", "-o", "addr", "show"]) + run(["ip", "-4", "route", "show"])


# ---------------------------------------------------------------- cgroups


def cgroup_hierarchies() -> list[Path]:
    """Every mounted cgroup hierarchy (v1 controllers, name=systemd, and the v2 one)."""
    if not CGROUP_FS.is_dir():
        return []
    return sorted(p for p in CGROUP_FS.iterdir() if p.is_dir() and (p / "cgroup.procs").exists())


def cgroup_tree(root: Path) -> list[Path]:
    """The cgroup `root` and every cgroup below it. Containers' cgroups come and go while
    the tree is read (a shim removes its own on exit); one that vanishes mid-walk is skipped,
    where `Path.rglob` would raise FileNotFoundError."""
    return [Path(top) for top, _dirs, _files in os.walk(root)]  # os.walk ignores such errors


def create_cgroup_root(name: str) -> None:
    for hierarchy in cgroup_hierarchies():
        if hierarchy.name == "unified":
            continue
        path = hierarchy / name
        path.mkdir(exist_ok=True)
        if hierarchy.name == "cpuset":
            for knob in ("cpuset.cpus", "cpuset.mems"):
                (path / knob).write_text((hierarchy / knob).read_text())


def cgroup_pids(name: str) -> set[int]:
    found: set[int] = set()
    for hierarchy in cgroup_hierarchies():
        root = hierarchy / name
        if not root.is_dir():
            continue
        for path in cgroup_tree(root):
            with contextlib.suppress(OSError, ValueError):
                found |= {int(p) for p in (path / "cgroup.procs").read_text().split()}
    return found


def remove_cgroup_root(name: str) -> list[str]:
    """rmdir the tree depth-first in every hierarchy; returns what could not be removed."""
    left = []
    for hierarchy in cgroup_hierarchies():
        root = hierarchy / name
        if not root.is_dir():
            continue
        below = [p for p in cgroup_tree(root) if p != root]
        for path in sorted(below, key=lambda p: -len(p.parts)):
            with contextlib.suppress(OSError):
                path.rmdir()
        try:
            root.rmdir()
        except OSError as exc:
            left.append(f"{root}: {exc}")
    return left


# ---------------------------------------------------------------- processes


def _ancestors() -> set[int]:
    """This process and its ancestors: never signalled, whatever namespace they are in."""
    found, pid = set(), os.getpid()
    while pid > 1:
        found.add(pid)
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            pid = int(stat[stat.rfind(")") + 2 :].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return found


def own_namespaces() -> set[int]:
    """Namespaces of this process, its parent and PID 1 (when readable): the host's, as far as
    this process can tell. A namespace in this set is never treated as a node's."""
    found = set()
    for pid in (os.getpid(), os.getppid(), 1):
        for kind in ("mnt", "net"):
            inode = ns_inode(pid, kind)
            if inode is not None:
                found.add(inode)
    return found


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return raw.decode(errors="replace").split("\0")


def holders_under(root: Path) -> set[int]:
    """Holder shells of nodes whose folder is under `root` (found by their exact arguments)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            args = _cmdline(int(entry.name))
            if (
                len(args) >= 5
                and args[:2] == ["/bin/sh", "-c"]
                and args[3] == HOLDER_MARK
                and args[4].startswith(f"{root}/")
            ):
                found.add(int(entry.name))
    return found


def processes_in_namespaces(namespaces: Iterable[int]) -> set[int]:
    """Every process in one of `namespaces` (mount or network), never the host's own."""
    wanted = set(namespaces) - own_namespaces()
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            pid = int(entry.name)
            if ns_inode(pid, "mnt") in wanted or ns_inode(pid, "net") in wanted:
                found.add(pid)
    return found - _ancestors()


def processes_with_args(program: str, exact_arg: str) -> set[int]:
    """Processes of `program` (argv[0]) that have `exact_arg` among their arguments."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            args = _cmdline(int(entry.name))
            if args and args[0] == program and exact_arg in args[1:]:
                found.add(int(entry.name))
    return found - _ancestors()


def kill_all(pids: set[int], grace: float) -> None:
    """SIGTERM, then SIGKILL what is left after `grace` seconds; wait until all are gone."""
    pids = pids - _ancestors()
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            pids = {p for p in pids if proc_start_time(p) is not None}
            if not pids:
                return
            for pid in pids:  # zombies of our own children count as gone; reap them
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, os.WNOHANG)
            time.sleep(0.05)
