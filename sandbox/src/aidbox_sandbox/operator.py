"""The real operator (`python -m aidbox_operator run`) as a child process on loopback ports,
with its metrics at hand: shared by the tests, the benchmark and the demo."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

from .kubeapi import free_port

# The operator's write requests, by the verb label of aidbox_operator_api_requests_total.
WRITE_VERBS = ("apply", "create", "patch", "update", "delete")
_SAMPLE = re.compile(r"^([a-zA-Z_:][\w:]*(?:\{[^}]*\})?) (\S+)$")
_REQUESTS = re.compile(r'aidbox_operator_api_requests_total\{verb="(\w+)"\}')


def parse_metrics(text: str) -> dict[str, float]:
    return {m[1]: float(m[2]) for line in text.splitlines() if (m := _SAMPLE.match(line))}


def _wait(predicate: Callable[[], bool], timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {message}")
        time.sleep(0.2)


class OperatorProcess:
    def __init__(
        self,
        kubeconfig: Path,
        log_path: Path,
        args: Sequence[str] = (),
        env: dict[str, str] | None = None,
        launcher: tuple[str, ...] = ("-m", "aidbox_operator"),
    ) -> None:
        self.kubeconfig = kubeconfig
        self.log_path = log_path
        self.args = tuple(args)
        self.extra_env = env or {}
        # What python runs: the operator's module, or a script wrapping it.
        self.launcher = launcher
        self.metrics_port = 0
        self.health_port = 0
        self.started_at = 0.0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def _command(self) -> list[str]:
        scoped = any(a in ("-n", "--namespace", "-A", "--all-namespaces") for a in self.args)
        # deploy/'s RBAC grants one Lease name: an operator started here runs without election
        # unless it asks for it, so it never stands by behind another one.
        elects = any(a.startswith(("--leader-elect", "--no-leader-elect")) for a in self.args)
        # Pinning asks a registry: on only when a test names one, so no request ever leaves
        # this machine for a public registry.
        pins = any(a.startswith("--image-pinning") for a in self.args)
        return [
            sys.executable,
            *self.launcher,
            "run",
            *(() if scoped else ("--all-namespaces",)),
            *(() if elects else ("--no-leader-elect",)),
            *(() if pins else ("--image-pinning=off",)),
            "--metrics-port",
            str(self.metrics_port),
            "--metrics-address",
            "127.0.0.1",
            "--health-endpoint",
            f"http://127.0.0.1:{self.health_port}/healthz",
            *self.args,
        ]

    def start(self, wait_healthy: bool = True) -> None:
        self.metrics_port, self.health_port = free_port(), free_port()
        env = {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "PYTHONUNBUFFERED": "1",
            **self.extra_env,
        }
        with self.log_path.open("ab") as log:
            self.started_at = time.monotonic()
            self.proc = subprocess.Popen(
                self._command(), stdout=log, stderr=subprocess.STDOUT, env=env
            )
        if wait_healthy:
            _wait(self.healthy, 60, "the operator's health endpoint")

    def healthy(self) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            raise RuntimeError(f"the operator exited; log:\n{self.log_tail()}")
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

    def restart(self) -> None:
        self.stop()
        self.start()

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
            if match := _REQUESTS.match(key):
                found[match[1]] = int(value)
        return found

    def writes(self) -> int:
        counts = self.requests_by_verb()
        return sum(counts.get(v, 0) for v in WRITE_VERBS)

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

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


def tcp_received(pid: int, port: int) -> dict[str, int]:
    """TCP bytes received so far on each of a process's connections to `port` (`ss`'s
    tcp_info, iproute2), by local address: every connection counts, kopf's watches included."""
    out = subprocess.run(
        ["ss", "-tinpH", "state", "established", "dport", "=", f":{port}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    found: dict[str, int] = {}
    local = ""
    for line in out.splitlines():
        if not line.startswith((" ", "\t")):
            local = line.split()[2] if f"pid={pid}," in line else ""
        elif local and (match := re.search(r"bytes_received:(\d+)", line)):
            found[local] = int(match[1])
    return found


def received_since(before: dict[str, int], after: dict[str, int]) -> int:
    """Bytes received between two `tcp_received` readings on the connections open at the
    second one (a connection closed in between is not counted)."""
    return sum(n - before.get(local, 0) for local, n in after.items())
