"""Runs the real operator (`python -m aidbox_operator run`) as a child process for tests."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from helpers import wait_for

WRITE_VERBS = ("apply", "create", "patch", "update", "delete")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class OperatorProcess:
    def __init__(
        self,
        kubeconfig: Path,
        log_path: Path,
        extra_args: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
        launcher: tuple[str, ...] = ("-m", "aidbox_operator"),
    ) -> None:
        self.kubeconfig = kubeconfig
        self.log_path = log_path
        self.extra_args = extra_args
        self.extra_env = env or {}
        # What python runs: the operator's module, or a test script wrapping it.
        self.launcher = launcher
        self.metrics_port = 0
        self.health_port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.metrics_port, self.health_port = free_port(), free_port()
        log = self.log_path.open("ab")
        env = {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "PYTHONUNBUFFERED": "1",
            **self.extra_env,
        }
        # deploy/'s RBAC grants one Lease (aidbox-operator in aidbox-operator-system): a test's
        # own single operator runs without election unless it asks for it, so that it never
        # stands by behind another test's operator.
        elect = any(a.startswith(("--leader-elect", "--no-leader-elect")) for a in self.extra_args)
        self.proc = subprocess.Popen(
            [
                sys.executable,
                *self.launcher,
                "run",
                *(() if "--namespace" in self.extra_args else ("--all-namespaces",)),
                *(() if elect else ("--no-leader-elect",)),
                "--metrics-port",
                str(self.metrics_port),
                "--metrics-address",
                "127.0.0.1",
                "--health-endpoint",
                f"http://127.0.0.1:{self.health_port}/healthz",
                *self.extra_args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        log.close()
        wait_for(self._healthy, timeout=60, message="the operator's health endpoint")

    def _healthy(self) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            raise AssertionError(f"the operator exited; log:\n{self.log_tail()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/healthz", timeout=2):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
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
        with urllib.request.urlopen(
            f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5
        ) as r:
            text = r.read().decode()
        values: dict[str, float] = {}
        for line in text.splitlines():
            match = re.match(r"^([a-zA-Z_:][\w:]*(?:\{[^}]*\})?) (\S+)$", line)
            if match:
                values[match[1]] = float(match[2])
        return values

    def requests_by_verb(self) -> dict[str, float]:
        found = {}
        for key, value in self.metrics().items():
            match = re.match(r'aidbox_operator_api_requests_total\{verb="(\w+)"\}', key)
            if match:
                found[match[1]] = value
        return found

    def writes(self) -> float:
        counts = self.requests_by_verb()
        return sum(counts.get(v, 0) for v in WRITE_VERBS)

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


def wait_quiet(op: OperatorProcess, seconds: float = 2.0, timeout: float = 30.0) -> None:
    """Wait until the operator has made no request for `seconds`."""
    deadline = time.monotonic() + timeout
    last = op.requests_by_verb()
    quiet_since = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now = op.requests_by_verb()
        if now != last:
            last, quiet_since = now, time.monotonic()
        elif time.monotonic() - quiet_since >= seconds:
            return
    raise AssertionError(f"the operator did not go quiet within {timeout}s")
