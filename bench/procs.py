"""The operator as a child process, its metrics, and /proc facts (RSS, CPU) of any process."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

WRITE_VERBS = ("apply", "create", "patch", "update", "delete")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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


def parse_metrics(text: str) -> dict[str, float]:
    values: dict[str, float] = {}
    for line in text.splitlines():
        match = re.match(r"^([a-zA-Z_:][\w:]*(?:\{[^}]*\})?) (\S+)$", line)
        if match:
            values[match[1]] = float(match[2])
    return values


class Operator:
    """`python -m aidbox_operator run` on loopback ports, with its metrics at hand."""

    def __init__(self, kubeconfig: Path, log_path: Path, args: list[str]) -> None:
        self.kubeconfig = kubeconfig
        self.log_path = log_path
        self.args = args
        self.proc: subprocess.Popen[bytes] | None = None
        self.metrics_port = 0
        self.health_port = 0
        self.started_at = 0.0

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, wait_healthy: bool = True) -> None:
        self.metrics_port, self.health_port = free_port(), free_port()
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), "PYTHONUNBUFFERED": "1"}
        with self.log_path.open("ab") as log:
            self.started_at = time.monotonic()
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "aidbox_operator",
                    "run",
                    "--metrics-port",
                    str(self.metrics_port),
                    "--metrics-address",
                    "127.0.0.1",
                    "--health-endpoint",
                    f"http://127.0.0.1:{self.health_port}/healthz",
                    *self.args,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        if wait_healthy:
            self.wait(self.healthy, 60, "the operator's health endpoint")

    def healthy(self) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            raise RuntimeError(f"the operator exited; see {self.log_path}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/healthz", timeout=2):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def metrics(self) -> dict[str, float]:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as resp:
            return parse_metrics(resp.read().decode())

    def try_metrics(self) -> dict[str, float] | None:
        try:
            return self.metrics()
        except OSError:
            return None

    def requests_by_verb(self, metrics: dict[str, float] | None = None) -> dict[str, int]:
        found: dict[str, int] = {}
        for key, value in (metrics or self.metrics()).items():
            match = re.match(r'aidbox_operator_api_requests_total\{verb="(\w+)"\}', key)
            if match:
                found[match[1]] = int(value)
        return found

    def wait_quiet(self, seconds: float = 3.0, timeout: float = 60.0) -> bool:
        """Wait until the operator made no request for `seconds` and its queue is empty."""
        deadline = time.monotonic() + timeout
        last = self.requests_by_verb()
        quiet_since = time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.25)
            metrics = self.metrics()
            now = self.requests_by_verb(metrics)
            if now != last or metrics.get("aidbox_operator_queue_depth", 0) > 0:
                last, quiet_since = now, time.monotonic()
            elif time.monotonic() - quiet_since >= seconds:
                return True
        return False

    @staticmethod
    def wait(predicate: object, timeout: float, message: str) -> None:
        assert callable(predicate)
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {message}")
            time.sleep(0.2)


def diff_counts(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {
        verb: after.get(verb, 0) - before.get(verb, 0)
        for verb in sorted(set(after) | set(before))
        if after.get(verb, 0) - before.get(verb, 0)
    }


def writes(counts: dict[str, int]) -> int:
    return sum(counts.get(v, 0) for v in WRITE_VERBS)
