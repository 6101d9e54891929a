"""Operator high availability: two replicas, exactly one writes; the standby takes over."""

from __future__ import annotations

import signal
import socket
import time
from pathlib import Path
from typing import Any

from kubernetes import client

from helpers import wait_for
from kube_helpers import create_cluster, get_cluster, make_config, patch_spec, wait_condition
from operator_process import WRITE_VERBS, OperatorProcess

LEASE_SECONDS = 6
# Where deploy/ grants the operator its Lease.
LEASE_NAMESPACE = "aidbox-operator-system"


def _holder(api: Any, namespace: str) -> str:
    lease = client.CoordinationV1Api(api).read_namespaced_lease("aidbox-operator", namespace)
    return str(lease.spec.holder_identity or "")


def _identity(op: OperatorProcess) -> str:
    assert op.proc is not None
    return f"{socket.gethostname()}-{op.proc.pid}"


def _writes(op: OperatorProcess) -> float:
    counts = op.requests_by_verb()
    return sum(counts.get(v, 0) for v in WRITE_VERBS)


def test_one_leader_writes_and_standby_takes_over(
    api_client: Any, own_namespace: str, operator_credentials: Path, tmp_path: Path
) -> None:
    ns = own_namespace
    sandbox_kubeconfig = operator_credentials  # both replicas run as the operator's account
    args = (
        "--namespace",
        ns,
        "--leader-elect",
        "--leader-election-namespace",
        LEASE_NAMESPACE,
        "--lease-seconds",
        str(LEASE_SECONDS),
    )
    first = OperatorProcess(sandbox_kubeconfig, tmp_path / "first.log", args)
    second = OperatorProcess(sandbox_kubeconfig, tmp_path / "second.log", args)
    first.start()
    second.start()
    try:
        ours = {_identity(first), _identity(second)}
        holder = wait_for(
            lambda: (h := _holder(api_client, LEASE_NAMESPACE)) in ours and h,
            timeout=30,
            message="one of the two replicas holding the lease",
        )
        leader, standby = (first, second) if holder == _identity(first) else (second, first)
        assert holder == _identity(leader)

        make_config(api_client, "ha", ns)
        create_cluster(api_client, "ha", ns)
        wait_condition(api_client, "ha", ns, "Ready")
        assert _writes(leader) > 0
        assert _writes(standby) == 0, standby.requests_by_verb()

        # The leader dies without a chance to release its lease.
        assert leader.proc is not None
        leader.proc.send_signal(signal.SIGKILL)
        leader.proc.wait()
        killed = time.monotonic()
        patch_spec(api_client, "ha", ns, {"replicas": 3})
        wait_for(
            lambda: get_cluster(api_client, "ha", ns)["status"]["ready"] == "3/3",
            timeout=LEASE_SECONDS * 4,
            interval=0.1,
            message="3/3 by the new leader",
        )
        takeover = time.monotonic() - killed
        assert _holder(api_client, LEASE_NAMESPACE) == _identity(standby)

        # A clean stop hands the lease over at once.
        leader.start()
        wait_for(
            lambda: leader.metrics().get("aidbox_operator_leader") == 0.0,
            timeout=20,
            message="restarted replica on standby",
        )
        standby.stop()
        stopped = time.monotonic()
        patch_spec(api_client, "ha", ns, {"replicas": 2})
        wait_for(
            lambda: get_cluster(api_client, "ha", ns)["status"]["ready"] == "2/2",
            timeout=LEASE_SECONDS * 4,
            interval=0.1,
            message="2/2 after a clean handover",
        )
        handover = time.monotonic() - stopped
        print(
            f"\nstandby took over and reconciled: after SIGKILL {takeover:.1f}s "
            f"(lease {LEASE_SECONDS}s), after a clean stop {handover:.1f}s"
        )
        assert takeover < LEASE_SECONDS + 5
        assert handover < 5
    finally:
        first.stop()
        second.stop()
