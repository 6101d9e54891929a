"""Real nodes leave the host as they found it: while they run (apart from their own host-side
veths) and after `down`, including a `down` after the sandbox crashed half-way through starting
them and a `down` that has lost the recorded state. Compares `sysctl -a`, iptables/nft rules of
the host netns, links, addresses, routes, mounts, cgroups and the daemons' well-known paths."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from typing import Any

from hoststate import differences, snapshot

from aidbox_sandbox import nodehost
from aidbox_sandbox.nodeconfig import identity
from helpers import wait_for


def _leftovers(real_nodes: Any) -> list[str]:
    ident = identity(real_nodes.cluster.state_dir)
    found = [f"holder {pid}" for pid in nodehost.holders_under(real_nodes.root)]
    found += [
        f"cgroup {h / name}"
        for h in nodehost.cgroup_hierarchies()
        for name in (f"aidbox-{ident}-n0", f"aidbox-{ident}-n1")
        if (h / name).exists()
    ]
    return found


def _timed(what: str, action: Any) -> float:
    started = time.monotonic()
    action()
    took = time.monotonic() - started
    print(f"\n{what}: {took:.1f}s")
    return took


def test_real_nodes_leave_host_state_as_found(real_nodes: Any) -> None:
    try:
        _check_host_state(real_nodes)
    finally:
        # The nodes are the session's: the tests that follow need them up, even after a failure.
        real_nodes.up(2)


def _check_host_state(real_nodes: Any) -> None:
    real_nodes.down()
    assert _leftovers(real_nodes) == []
    baseline = snapshot()
    ident = identity(real_nodes.cluster.state_dir)
    # While the nodes run, their host-side veths and their cgroups exist; nothing else may.
    ours = rf"abx{ident[:6]}n\d|/aidbox-{ident}-n\d"
    # Anything that differs between two idle readings is noise, not the nodes' doing.
    noise = {k for k, v in snapshot().sysctls.items() if baseline.sysctls.get(k) != v}
    for key in noise:
        baseline.sysctls.pop(key, None)

    def compare(label: str, ignore: str | None = None) -> None:
        now = snapshot()
        for key in noise:
            now.sysctls.pop(key, None)
        found = differences(baseline, now, ignore)
        assert found == [], f"{label}:\n" + "\n".join(found)

    _timed("2 real nodes up (packages, binaries and images cached)", lambda: real_nodes.up(2))
    compare("while the nodes run", ignore=ours)
    _timed("real nodes down", real_nodes.down)
    compare("after down")
    assert _leftovers(real_nodes) == []

    # A crash half-way: the process starting the nodes is killed once the second holder exists.
    state_dir = real_nodes.cluster.state_dir
    code = (
        "from pathlib import Path\n"
        "from aidbox_sandbox import Sandbox\n"
        "from aidbox_sandbox.realnode import RealNodes\n"
        f"RealNodes(Sandbox(Path({str(state_dir)!r}))).up(2)\n"
    )
    starter = subprocess.Popen([sys.executable, "-c", code])
    try:
        wait_for(
            lambda: (real_nodes.root / "n1" / "holder.ready").exists(),
            timeout=60,
            interval=0.02,
            message="the second node's holder",
        )
    finally:
        starter.send_signal(signal.SIGKILL)
        starter.wait()
    assert _leftovers(real_nodes) != []
    real_nodes.down()
    compare("after a crash while starting, then down")
    assert _leftovers(real_nodes) == []

    # Recorded state lost (e.g. the folder's state file deleted): down still finds everything.
    real_nodes.up(2)
    (real_nodes.root / "state.json").unlink()
    real_nodes.down()
    compare("after down without the recorded state")
    assert _leftovers(real_nodes) == []
