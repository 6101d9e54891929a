"""Two operators started by hand, as a new user does: `make run` leaves one running, `make demo`
starts another against the same sandbox. Leader election is on by default, so only one of them
may write; `make down` must stop the one `make run` left behind.

Runs on a sandbox of its own: `make down` stops the sandbox it is pointed at.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from audit import AuditLog
from fleet import FIGURES_FILE

REPO = Path(__file__).resolve().parents[2]


def _make(target: str, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "-C", str(REPO), target, f"VENV={sys.prefix}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _alive(pid: int) -> bool:
    try:
        return "aidbox-operator" in Path(f"/proc/{pid}/cmdline").read_text(errors="replace")
    except OSError:
        return False


def test_make_run_then_make_demo_has_one_writer_and_make_down_stops_it(tmp_path: Path) -> None:
    state = tmp_path / "sandbox"
    env = {**os.environ, "AIDBOX_SANDBOX_DIR": str(state), "RUN_DETACH": "1"}
    env.pop("KUBECONFIG", None)
    pid = 0
    try:
        run = _make("run", env, 600)
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        pid = int((state / "operator.pid").read_text())
        assert _alive(pid)
        started = time.time()
        demo = _make("demo", env, 600)
        assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
        assert "demo complete: every step happened" in demo.stdout
        timeline = AuditLog(state / "audit.log", "default", "aidbox-operator").read()
        writes = [w for w in timeline.writes if w.at >= started]
        writers = {w.identity for w in writes}
        runner = f"{socket.gethostname()}-{pid}"
        demo_log = (state / "demo-operator.log").read_text(errors="replace")
        row = {
            "scenario": "make run + make demo (two operators by hand)",
            "writes_by_replica": {w: sum(1 for x in writes if x.identity == w) for w in writers},
            "non_leader_writes": len(timeline.non_leader_writes(15.0, started)),
            "demo_operator_led": "became the leader" in demo_log,
        }
        FIGURES_FILE.parent.mkdir(parents=True, exist_ok=True)
        with FIGURES_FILE.open("a") as fh:
            fh.write(json.dumps(row) + "\n")
        print(f"\n{json.dumps(row)}")
        # Only `make run`'s operator wrote; the demo's stood by the whole time.
        assert writers == {runner}, row
        assert row["non_leader_writes"] == 0, row
        assert not row["demo_operator_led"], demo_log[-2000:]
    finally:
        down = _make("down", env, 300)
        assert down.returncode == 0, down.stdout[-3000:] + down.stderr[-3000:]
        if pid:
            deadline = time.monotonic() + 30
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.2)
            assert not _alive(pid), "make down left the operator of make run running"
