"""The Aidbox stand-in on its own (loopback, no node): the outside behaviour the real-node tests
and the operator rely on, as aidbox-facts.md describes Aidbox."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aidbox_operator.status.database import database_problem
from aidbox_sandbox import images
from helpers import wait_for
from operator_process import free_port

KEYS = {
    "BOX_SECURITY_AUTH_KEYS_PRIVATE": "-----BEGIN PRIVATE KEY-----\nnot-a-real-key\n",
    "BOX_SECURITY_AUTH_KEYS_PUBLIC": "-----BEGIN PUBLIC KEY-----\nnot-a-real-key\n",
    "BOX_SECURITY_AUTH_KEYS_SECRET": "s" * 40,
}


@pytest.fixture(scope="module")
def binary() -> Path:
    return images.build_binaries() / "aidbox"


class Standin:
    def __init__(self, binary: Path, env: dict[str, str]) -> None:
        self.port, self.metrics_port = free_port(), free_port()
        self.env = {
            "PATH": os.environ.get("PATH", ""),
            "BOX_WEB_PORT": str(self.port),
            "BOX_METRICS_PORT": str(self.metrics_port),
            "STANDIN_DATABASE": "none",
            **env,
        }
        self.proc = subprocess.Popen(
            [str(binary)], env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )

    def get(self, path: str, port: int | None = None) -> Any:
        url = f"http://127.0.0.1:{port or self.port}{path}"
        with urllib.request.urlopen(url, timeout=2) as resp:
            body = resp.read().decode()
            return json.loads(body) if path != "/metrics" else body

    def accepting(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.kill()
        out, _ = self.proc.communicate(timeout=10)
        return out.decode()


@pytest.fixture
def run(binary: Path) -> Iterator[Any]:
    started: list[Standin] = []

    def start(**env: str) -> Standin:
        box = Standin(binary, env)
        started.append(box)
        return box

    yield start
    for box in started:
        box.stop()


def test_health_version_and_metrics(run: Any) -> None:
    box = run(STANDIN_VERSION="2510.7", **KEYS)
    health = wait_for(lambda: box.get("/health"), timeout=10, message="stand-in /health")
    assert health["status"] == "pass"
    assert health["about"]["version"] == "2510.7"
    assert set(health["checks"]) == {"uptime", "memory:utilization", "db:responseTime"}
    assert health["checks"]["uptime"][0]["status"] == "pass"
    assert box.get("/$version")["version"] == "2510.7"
    assert "standin_requests_total" in box.get("/metrics", box.metrics_port)


def test_key_fingerprint_is_shared_secret_free_and_differs_without_keys(run: Any) -> None:
    a, b = run(**KEYS), run(**KEYS)
    c, d = run(), run()
    about = [wait_for(lambda x=x: x.get("/health"), timeout=10)["about"] for x in (a, b, c, d)]
    assert about[0]["authKeysFingerprint"] == about[1]["authKeysFingerprint"]
    assert about[0]["authKeysSource"] == "environment"
    # Without keys each process makes up its own, as Aidbox does: replicas would disagree.
    assert about[2]["authKeysFingerprint"] != about[3]["authKeysFingerprint"]
    assert about[2]["authKeysSource"] == "generated"
    text = json.dumps(about) + a.stop()
    assert all(value not in text for value in KEYS.values())


def test_refuses_one_key_of_the_pair(run: Any) -> None:
    box = run(BOX_SECURITY_AUTH_KEYS_PRIVATE=KEYS["BOX_SECURITY_AUTH_KEYS_PRIVATE"])
    assert box.proc.wait(timeout=10) != 0
    assert "refusing to start" in box.stop()


def test_startup_delay_then_drain_on_sigterm(run: Any) -> None:
    box = run(STANDIN_STARTUP_SECONDS="1.5", STANDIN_DRAIN_SECONDS="2")
    started = time.monotonic()
    assert not box.accepting(), "nothing listens during the simulated migrations"
    wait_for(box.accepting, timeout=10, interval=0.05, message="listening after start-up")
    assert time.monotonic() - started >= 1.2
    box.proc.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    # Proof that the signal was received (it reports draining), then: still serving.
    wait_for(
        lambda: box.get("/metrics", box.metrics_port).count("standin_draining 1") == 1,
        timeout=5,
        interval=0.05,
        message="draining after SIGTERM",
    )
    assert box.get("/health")["status"] == "pass", "still serving while draining"
    wait_for(lambda: not box.accepting(), timeout=10, interval=0.05, message="stops accepting")
    assert time.monotonic() - signalled >= 1.8
    assert box.proc.wait(timeout=10) == 0


def test_fail_start_exits_with_a_termination_message(run: Any, tmp_path: Path) -> None:
    message_file = tmp_path / "termination-log"
    box = run(
        STANDIN_STARTUP_SECONDS="1",
        STANDIN_FAIL_START="migration 2510.3 failed: test",
        STANDIN_TERMINATION_LOG=str(message_file),
    )
    started = time.monotonic()
    assert box.proc.wait(timeout=10) == 1
    assert time.monotonic() - started >= 0.9, "fails after the start-up delay"
    assert not box.accepting()
    assert message_file.read_text() == "migration 2510.3 failed: test"
    assert "start-up failed: migration 2510.3 failed: test" in box.stop()


def test_release_binary_fails_whatever_the_environment(tmp_path: Path) -> None:
    binary = images.build_release_binary("2510.3", fail_start="migration failed: it's broken")
    message_file = tmp_path / "termination-log"
    env = {"STANDIN_TERMINATION_LOG": str(message_file), "STANDIN_FAIL_START": ""}
    done = subprocess.run([str(binary)], env=env, capture_output=True, timeout=30, check=False)
    assert done.returncode == 1
    assert message_file.read_text() == "migration failed: it's broken"
    assert b"aidbox stand-in 2510.3 starting" in done.stderr


def test_without_a_database_it_does_not_start(run: Any, tmp_path: Path) -> None:
    message_file = tmp_path / "termination-log"
    box = run(STANDIN_DATABASE="", STANDIN_TERMINATION_LOG=str(message_file))
    assert box.proc.wait(timeout=10) == 1
    assert message_file.read_text().startswith("no database configured: set BOX_DB_HOST")


def test_a_database_that_refuses_connections_fails_the_start_in_the_drivers_words(
    run: Any, tmp_path: Path
) -> None:
    message_file = tmp_path / "termination-log"
    port = free_port()  # nothing listens there: the connection is refused at once
    box = run(
        STANDIN_DATABASE="",
        BOX_DB_HOST="127.0.0.1",
        BOX_DB_PORT=str(port),
        BOX_DB_USER="aidbox",
        BOX_DB_PASSWORD="x",
        STANDIN_DB_WAIT_SECONDS="1",
        STANDIN_TERMINATION_LOG=str(message_file),
    )
    assert box.proc.wait(timeout=15) == 1
    assert not box.accepting()
    message = message_file.read_text()
    assert message.startswith(f"org.postgresql.util.PSQLException: Connection to 127.0.0.1:{port}")
    assert database_problem(message) == ("DatabaseUnreachable", message)
