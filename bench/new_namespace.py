"""How soon the operator serves a namespace that matches its `--namespace` glob but was created
after it started: the time from creating an AidboxCluster in a brand-new namespace to the first
status the operator writes on it. A script that reports numbers, not a test.

    .venv/bin/python bench/new_namespace.py --rounds 6

The operator runs from the Python this script runs with (`sys.executable -m aidbox_operator`),
so pointing another checkout's venv at this file measures that checkout's operator.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from kube import Kube  # noqa: E402
from procs import Operator  # noqa: E402
from workload import cluster_object, config_objects, install_crd, log, make_namespaces  # noqa: E402

from aidbox_sandbox import Sandbox  # noqa: E402

PREFIX = "nsx-"
MANAGER = "aidbox-operator"


def _first_status_after(kube: Kube, namespace: str, timeout: float) -> float:
    """Create a cluster in `namespace`; seconds until the operator wrote its status."""
    for obj in config_objects(namespace, "aidbox"):
        kube.create(obj)
    started = time.monotonic()
    kube.create(cluster_object(namespace, "aidbox"))
    while time.monotonic() - started < timeout:
        body = kube.get("AidboxCluster", namespace, "aidbox")
        # The operator's field manager on the status subresource: its first status write (a
        # set status.phase proves nothing, the CRD defaults it to Pending).
        managed = (body.get("metadata") or {}).get("managedFields") or []
        if any(m.get("manager") == MANAGER and m.get("subresource") == "status" for m in managed):
            return time.monotonic() - started
        time.sleep(0.05)
    return float("inf")


def measure(kube: Kube, rounds: int, gap: float, timeout: float) -> list[float]:
    seconds = []
    for i in range(rounds):
        namespace = f"{PREFIX}{i}-{int(time.time())}"
        make_namespaces(kube, [namespace], 1)
        seconds.append(_first_status_after(kube, namespace, timeout))
        log(f"round {i}: {namespace} served after {seconds[-1]:.2f}s")
        time.sleep(gap)
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6, help="new namespaces, one at a time")
    parser.add_argument("--gap", type=float, default=2.0, help="seconds between rounds")
    parser.add_argument("--timeout", type=float, default=180.0, help="per round (s)")
    parser.add_argument("--state-dir", default="/tmp/sbx-bench/new-namespace")
    args = parser.parse_args()
    box = Sandbox(state_dir=Path(args.state_dir))
    box.up(progress=lambda m: log(f"sandbox: {m}"))
    kube = Kube(box.kubeconfig)
    op = Operator(box.kubeconfig, Path(args.state_dir).parent / "new-namespace-operator.log")
    op.args = ("--namespace", f"{PREFIX}*")
    try:
        install_crd(kube)
        op.start()  # healthy; the first round starts right away
        seconds = measure(kube, args.rounds, args.gap, args.timeout)
    finally:
        op.stop()
        kube.close()
        box.down()
    finite = [s for s in seconds if s != float("inf")]
    result = {
        "rounds": seconds,
        "first_s": seconds[0],
        "median_s": statistics.median(finite) if finite else None,
        "max_s": max(seconds),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
