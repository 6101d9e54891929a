"""Whole scenarios: the `make demo` tour, run against the test cluster with the test operator."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.usefixtures("operator")
def test_demo_tour_happens(sandbox: Any, sandbox_kubeconfig: Path) -> None:
    kubectl = str(sandbox.bin_dir / "kubectl") if sandbox else shutil.which("kubectl")
    assert kubectl, "kubectl is needed on PATH when testing an existing cluster"
    # The session operator watches t-* namespaces.
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "demo.py"),
            "--kubeconfig",
            str(sandbox_kubeconfig),
            "--kubectl",
            kubectl,
            "--namespace",
            f"t-demo-{os.getpid()}",
            "--no-operator",
            "--pause",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "demo complete: every step happened" in done.stdout
