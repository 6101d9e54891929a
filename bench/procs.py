"""/proc facts (RSS, CPU) of any process, and request counts; the operator process itself is
aidbox_sandbox.operator.OperatorProcess (shared with the tests)."""

from __future__ import annotations

import os
from pathlib import Path

from aidbox_sandbox.operator import WRITE_VERBS
from aidbox_sandbox.operator import OperatorProcess as Operator

__all__ = ["Operator", "cpu_seconds", "diff_counts", "hwm_mb", "rss_mb", "writes"]

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
