"""Traffic of a real node cannot leave the machine's own namespaces: whatever a node or its pods
send to an address outside the node network is routed into the portless blackhole bridge, DNS
included. Checked through the kernel's routing decision (`ip route get`), so that this test
itself never sends such a packet."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from aidbox_sandbox.nodeconfig import CLUSTER_DNS


def _route(holder: int, address: str) -> str:
    return subprocess.run(
        ["nsenter", f"--target={holder}", "--net", "--", "ip", "-4", "route", "get", address],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def _host_nameservers() -> list[str]:
    text = Path("/etc/resolv.conf").read_text() if Path("/etc/resolv.conf").exists() else ""
    return [line.split()[1] for line in text.splitlines() if line.startswith("nameserver")]


def test_outside_addresses_route_into_the_blackhole(real_nodes: Any) -> None:
    default_gw = subprocess.run(
        ["ip", "-4", "route", "show", "default"], capture_output=True, text=True, check=True
    ).stdout.split()
    outside = ["192.0.2.77", "198.51.100.1", "8.8.8.8", CLUSTER_DNS, *_host_nameservers()]
    if "via" in default_gw:
        outside.append(default_gw[default_gw.index("via") + 1])
    for name in real_nodes.names():
        holder = real_nodes.holder(name)
        for address in outside:
            assert "dev blackhole0" in _route(holder, address), (name, address)
        node_resolv = (real_nodes.root / f"n{name.rsplit('-', 1)[1]}" / "resolv.conf").read_text()
        assert f"nameserver {CLUSTER_DNS}" in node_resolv
