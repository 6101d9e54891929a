"""/proc facts (RSS, CPU) of any process, the sandbox's process ids, and request and reconcile
counts; the operator process itself is aidbox_sandbox.operator.OperatorProcess (shared with the
tests)."""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aidbox_sandbox import Sandbox
from aidbox_sandbox.operator import WRITE_VERBS
from aidbox_sandbox.operator import OperatorProcess as Operator

__all__ = [
    "Operator",
    "audit_counts",
    "audit_events",
    "audit_resource",
    "cpu_seconds",
    "diff_counts",
    "hwm_mb",
    "reconciles",
    "rss_mb",
    "sandbox_pids",
    "wait_until",
    "workers_args",
    "writes",
]

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    return _status_kb(pid, "VmRSS:") / 1024


def hwm_mb(pid: int) -> float:
    return _status_kb(pid, "VmHWM:") / 1024


def _status_kb(pid: int, field: str) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field):
                return float(line.split()[1])
    except OSError:
        pass
    return 0.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of the process so far."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rfind(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def diff_counts(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {
        verb: after.get(verb, 0) - before.get(verb, 0)
        for verb in sorted(set(after) | set(before))
        if after.get(verb, 0) - before.get(verb, 0)
    }


def writes(counts: dict[str, int]) -> int:
    return sum(counts.get(v, 0) for v in WRITE_VERBS)


def reconciles(metrics: dict[str, float]) -> float:
    """Reconcile passes so far, any result (`aidbox_operator_reconciles_total`)."""
    return sum(v for k, v in metrics.items() if k.startswith("aidbox_operator_reconciles_total{"))


def sandbox_pids(box: Sandbox) -> dict[str, int]:
    data = json.loads((box.state_dir / "pids.json").read_text())
    return {p["name"]: int(p["pid"]) for p in data.get("processes", [])}


def workers_args(workers: int | None) -> list[str]:
    """The operator's `--workers` flag, or none: then it runs with its own default."""
    return [] if workers is None else ["--workers", str(workers)]


def wait_until(predicate: Callable[[], bool], timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {message}")
        time.sleep(0.2)


def audit_events(box: Sandbox, t_from: float, t_to: float) -> Iterator[tuple[str, dict[str, Any]]]:
    """The operator's completed requests (kopf and its own client) in the API server's audit
    log between two wall-clock times: (user agent, audit event)."""
    start = datetime.fromtimestamp(t_from, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
    end = datetime.fromtimestamp(t_to, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
    for path in sorted(box.state_dir.glob("audit*.log")):
        with path.open() as fh:
            for line in fh:
                try:
                    ev = json.loads(line)
                except ValueError:
                    continue
                agent = (ev.get("userAgent") or "").split("/")[0]
                if agent.startswith(("kube-", "kwok", "aidbox-bench")) or not agent:
                    continue
                stamp = ev.get("stageTimestamp", "")[:26]
                if start <= stamp <= end and ev.get("stage") == "ResponseComplete":
                    yield agent, ev


def audit_resource(ev: dict[str, Any]) -> str:
    """The resource of an audit event, with its subresource: `aidboxclusters/status`."""
    ref = ev.get("objectRef") or {}
    res = str(ref.get("resource", ev.get("requestURI", "?")))
    return res + "/" + ref["subresource"] if ref.get("subresource") else res


def audit_counts(box: Sandbox, t_from: float, t_to: float) -> dict[str, int]:
    """API requests of the operator seen by the API server's audit log between two wall-clock
    times: "agent verb resource" -> count."""
    counts: Counter[str] = Counter()
    for agent, ev in audit_events(box, t_from, t_to):
        counts[f"{agent} {ev.get('verb')} {audit_resource(ev)}"] += 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))
