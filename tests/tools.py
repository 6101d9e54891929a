"""Command-line tools the tests need that are not Python packages: built from Go when missing.

`helm()` returns a helm binary of HELM_VERSION, building it with `go install` (the same Go
environment and cache as the sandbox binaries) into <cache>/bin/helm-<version>/ on first use.
Measured on 2 cores with an empty module cache for helm: 5 min 37 s; later runs reuse it.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import time
from pathlib import Path

from aidbox_operator.sandbox import build

HELM_MODULE = "helm.sh/helm/v4"
HELM_VERSION = "v4.3.1"
BUILD_TIMEOUT = 40 * 60


def helm_dir() -> Path:
    return build.cache_root() / "bin" / f"helm-{HELM_VERSION}"


def helm() -> Path:
    """Path of a working helm binary; builds it first if needed (fails, never skips)."""
    binary = helm_dir() / "helm"
    if binary.is_file():
        return binary
    lock = build.cache_root() / f".helm-{HELM_VERSION}.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)  # another session may be building it right now
        try:
            if not binary.is_file():
                _build_helm(binary)
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
    return binary


def _build_helm(binary: Path) -> None:
    go = build.find_go()  # raises SandboxError saying what to install
    logs = build.cache_root() / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"build-helm-{HELM_VERSION}.log"
    tmp_dir = binary.parent.with_name(binary.parent.name + ".tmp")
    tmp_dir.mkdir(parents=True, exist_ok=True)
    env = {**build.go_env(), "GOBIN": str(tmp_dir)}
    env.pop(
        "GOFLAGS", None
    )  # `go install pkg@version` ignores the main module; -mod=mod not needed
    print(f"[tools] building helm {HELM_VERSION} (a few minutes; log: {log})", file=sys.stderr)
    start = time.monotonic()
    with log.open("w") as out:
        result = subprocess.run(
            [
                str(go),
                "install",
                "-trimpath",
                "-ldflags",
                f"-s -w -X helm.sh/helm/v4/internal/version.version={HELM_VERSION}",
                f"{HELM_MODULE}/cmd/helm@{HELM_VERSION}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=tmp_dir,
            timeout=BUILD_TIMEOUT,
            check=False,
        )
    if result.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
        raise AssertionError(f"building helm {HELM_VERSION} failed (log {log}):\n{tail}")
    binary.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp_dir / "helm", binary)
    tmp_dir.rmdir()
    elapsed = time.monotonic() - start
    print(f"[tools] helm {HELM_VERSION} built in {elapsed:.0f}s: {binary}", file=sys.stderr)
