"""Command-line tools the tests need that are not Python packages: built from Go when missing.

`helm()` returns a helm binary of HELM_VERSION, building it with `go install` (the same Go
environment and cache as the sandbox binaries) into <cache>/bin/helm-<version>/ on first use.
Measured on 2 cores with an empty module cache for helm: 5 min 37 s; later runs reuse it.

`kstatus()` returns the helper in tools/kstatus (sigs.k8s.io/cli-utils' kstatus verdict for JSON
objects on stdin), built into <cache>/bin/kstatus-<hash of its go.mod, go.sum, main.go>/.

`argocd_health()` returns the helper in tools/argocd-health (an Argo CD health script run the way
Argo CD runs it: gopher-lua with Argo CD's libraries and conversions), built the same way into
<cache>/bin/argocd-health-<hash>/. Measured with empty Go caches on 2 cores shared with other
builds: 71 s (23 s of CPU), most of it compiling gopher-lua; later runs reuse the binary.

`promtool()` returns Prometheus' promtool (for `promtool check rules` / `promtool test rules` on
the operator's alerts), built like helm from Prometheus' own module at PROMETHEUS_MODULE_VERSION
into <cache>/bin/promtool-<version>/, with Prometheus' build tag remove_all_sd (no service
discovery plugins: rule tests need none). Measured on 2 cores shared with other sessions' builds
(load average about 5), `nice -n 19`, with an empty GOMODCACHE and GOCACHE: 6 min 25 s (382 s
of CPU, 964 MB of modules, a 54 MB binary); without the tag: 13 min 8 s (877 s of CPU, 1.8 GB of
modules, 88 MB). With both caches warm and the binary gone: 12 s (21 s without the tag); later
runs reuse the binary.

`kube_score()` and `kustomize()` return kube-score and kustomize (the manifest linter of
scripts/lint_manifests.py, and what renders deploy/ for it without the sandbox's kubectl), built
like helm. With an empty GOMODCACHE and GOCACHE each, `nice -n 19` on 2 cores shared with other
sessions' builds (load average 20 to 27): kube-score 280 s (63 s of CPU, 148 MB of modules, a
16 MB binary), kustomize 230 s (51 s of CPU, 119 MB, 16 MB). With the caches warm and the
binary gone: 2 s each.

`metrics_server()` returns metrics-server (the metrics.k8s.io API the HorizontalPodAutoscaler
reads, for the real-node autoscaling test), built like helm from its own module at
METRICS_SERVER_VERSION (it needs Go 1.26.4; this machine has 1.26.8). Measured with an empty
GOMODCACHE and GOCACHE, `nice -n 19` on 2 cores shared with other sessions' builds (load
average 20 to 27) and a second metrics-server build: 24 min 45 s wall (250 s user + 50 s system
CPU, 370 MB of modules, 1.4 GB of build cache, a 71 MB binary). On the shared cache, which
held other k8s.io versions than its v0.36.2: 1000 s. With both caches warm and the binary
gone: 6.5 s; later runs reuse the binary.
`checkov()` returns Checkov (Bridgecrew's scanner, the manifest linter standing in for kube-linter
and Polaris), a PyPI package: installed with pip at CHECKOV_VERSION into a venv of its own,
<cache>/tools/checkov-<version>/, on first use, so that its ~100 dependencies stay out of the
project's venv (and out of the set-up `make test` waits for). pip's own settings apply as they
are (on this machine PIP_FIND_LINKS=/opt/wheels, an empty folder, PIP_DEFAULT_TIMEOUT=180,
PIP_CERT; the index is PyPI). Measured at `nice -n 19` on 2 cores shared with other sessions:
with an empty pip cache, 41 s wall at load average 9 (24 s of CPU), and 87 s at load 6 with
PIP_NO_CACHE_DIR=1 (27 s of CPU); again with the same pip cache, 31 s (24 s of CPU), though
pip kept nothing there (the cache stayed empty: every wheel was downloaded again), so the
difference is the machine's load. The CPU is unpacking ~100 wheels into 291 MB.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import venv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aidbox_sandbox import build
from aidbox_sandbox.files import file_lock

REPO = Path(__file__).resolve().parents[1]
GO_TOOL_FILES = ("go.mod", "go.sum", "main.go")  # a helper's sources under tools/<name>/
HELM_MODULE = "helm.sh/helm/v4"
HELM_VERSION = "v4.3.1"
# Prometheus release 3.x is published as Go module version v0.3xx.y.
PROMETHEUS_MODULE = "github.com/prometheus/prometheus"
PROMETHEUS_MODULE_VERSION = "v0.316.0"
PROMETHEUS_VERSION = "3.16.0"
BUILD_TIMEOUT = 40 * 60


@dataclass(frozen=True)
class _Release:
    """A command built with `go install <package>@<version>` from its own released module."""

    name: str
    package: str
    version: str
    ldflags: str
    tags: str = ""

    def binary(self) -> Path:
        return build.cache_root() / "bin" / f"{self.name}-{self.version}" / self.name


HELM = _Release(
    "helm",
    f"{HELM_MODULE}/cmd/helm",
    HELM_VERSION,
    f"-s -w -X helm.sh/helm/v4/internal/version.version={HELM_VERSION}",
)
PROMTOOL = _Release(
    "promtool",
    f"{PROMETHEUS_MODULE}/cmd/promtool",
    PROMETHEUS_MODULE_VERSION,
    f"-s -w -X github.com/prometheus/common/version.Version={PROMETHEUS_VERSION}",
    # Prometheus' own build tag leaving out every service discovery plugin (the cloud SDKs):
    # checking and testing rules needs none; it halves the cold build and the binary.
    tags="remove_all_sd",
)
# Manifest linters (scripts/lint_manifests.py). Of the three the project meant to run, only
# kube-score's module is served by the Go module proxy this project builds from. It answers
# "403 This module version is not available" for kube-linter (golang.stackrox.io/kube-linter
# and github.com/stackrox/kube-linter, @latest, v0.7.6 and the version list) and for Polaris
# (github.com/fairwindsops/polaris, its /v9 and /v10 paths, @latest and @master).
KUBE_SCORE_VERSION = "v1.20.0"
KUBE_SCORE = _Release(
    "kube-score",
    "github.com/zegl/kube-score/cmd/kube-score",
    KUBE_SCORE_VERSION,
    f"-s -w -X main.version={KUBE_SCORE_VERSION.removeprefix('v')}",
)
# kubectl's own kustomize (kubectl 1.37 embeds kustomize v5.8.1): renders deploy/ without the
# sandbox's kubectl, which only a control plane build brings.
KUSTOMIZE_VERSION = "v5.8.1"
KUSTOMIZE = _Release(
    "kustomize",
    "sigs.k8s.io/kustomize/kustomize/v5",
    KUSTOMIZE_VERSION,
    "-s -w",
)
# metrics-server's release tags are its module versions; its Makefile stamps the version into
# client-go's version package, which its /version and user agent report.
METRICS_SERVER_VERSION = "v0.9.0"
METRICS_SERVER = _Release(
    "metrics-server",
    "sigs.k8s.io/metrics-server/cmd/metrics-server",
    METRICS_SERVER_VERSION,
    f"-s -w -X k8s.io/client-go/pkg/version.gitVersion={METRICS_SERVER_VERSION}",
)


CHECKOV_VERSION = "3.3.30"
PIP_TIMEOUT = 20 * 60


def helm_dir() -> Path:
    return HELM.binary().parent


def helm() -> Path:
    """Path of a working helm binary; builds it first if needed (fails, never skips)."""
    return _released(HELM)


def promtool() -> Path:
    """Path of a working promtool binary; builds it first if needed (fails, never skips)."""
    return _released(PROMTOOL)


def kube_score() -> Path:
    """Path of a working kube-score binary; builds it first if needed (fails, never skips)."""
    return _released(KUBE_SCORE)


def kustomize() -> Path:
    """Path of a working kustomize binary; builds it first if needed (fails, never skips)."""
    return _released(KUSTOMIZE)


def metrics_server() -> Path:
    """Path of a working metrics-server binary; builds it first if needed (fails, never
    skips)."""
    return _released(METRICS_SERVER)


def checkov() -> Path:
    """Path of a working checkov command; installs it into its own venv first if needed (fails,
    never skips)."""
    home = build.cache_root() / "tools" / f"checkov-{CHECKOV_VERSION}"
    command = home / "bin" / "checkov"
    done = home / ".installed"  # written last: a venv cut short by a crash is made again
    if done.is_file():
        return command
    with file_lock(build.cache_root() / f".checkov-{CHECKOV_VERSION}.lock"):
        if not done.is_file():
            _pip_install_checkov(home)
            done.write_text(f"checkov=={CHECKOV_VERSION}\n")
    return command


def _pip_install_checkov(home: Path) -> None:
    log = build.cache_root() / "logs" / f"install-checkov-{CHECKOV_VERSION}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(home, ignore_errors=True)
    # A venv cannot be moved (its scripts name their interpreter by path): made in place.
    venv.EnvBuilder(with_pip=True, clear=True).create(home)
    what = f"checkov {CHECKOV_VERSION}"
    print(f"[tools] installing {what} (a minute or two when cold; log: {log})", file=sys.stderr)
    start = time.monotonic()
    with log.open("w") as out:
        result = subprocess.run(
            [str(home / "bin" / "python"), "-m", "pip", "install", f"checkov=={CHECKOV_VERSION}"],
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=PIP_TIMEOUT,
            check=False,
        )
    if result.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
        raise AssertionError(f"installing {what} failed (log {log}):\n{tail}")
    elapsed = time.monotonic() - start
    print(f"[tools] {what} installed in {elapsed:.0f}s: {home}", file=sys.stderr)


def _released(release: _Release) -> Path:
    binary = release.binary()
    if binary.is_file():
        return binary
    # Another session may be building it right now: wait for it instead of building twice.
    with file_lock(build.cache_root() / f".{release.name}-{release.version}.lock"):
        if not binary.is_file():
            _go_install(release, binary)
    return binary


def _go_install(release: _Release, binary: Path) -> None:
    go = build.find_go()  # raises SandboxError saying what to install
    log = build.cache_root() / "logs" / f"build-{release.name}-{release.version}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = binary.parent.with_name(binary.parent.name + ".tmp")
    tmp_dir.mkdir(parents=True, exist_ok=True)
    env = {**build.go_env(), "GOBIN": str(tmp_dir)}
    env.pop("GOFLAGS", None)  # `go install pkg@version` ignores any main module: no -mod=mod
    what = f"{release.name} {release.version}"
    print(f"[tools] building {what} (minutes when cold; log: {log})", file=sys.stderr)
    tags = ["-tags", release.tags] if release.tags else []
    start = time.monotonic()
    with log.open("w") as out:
        result = subprocess.run(
            [
                str(go),
                "install",
                "-trimpath",
                *tags,
                "-ldflags",
                release.ldflags,
                f"{release.package}@{release.version}",
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
        raise AssertionError(f"building {what} failed (log {log}):\n{tail}")
    binary.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp_dir / release.name, binary)
    tmp_dir.rmdir()
    elapsed = time.monotonic() - start
    print(f"[tools] {what} built in {elapsed:.0f}s: {binary}", file=sys.stderr)


def _source_key(source: Path) -> str:
    digest = hashlib.sha256()
    for name in GO_TOOL_FILES:
        digest.update(name.encode() + b"\0" + (source / name).read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def go_tool(name: str) -> Path:
    """Path of the helper built from tools/<name> for its current sources; builds it if needed."""
    source = REPO / "tools" / name
    key = _source_key(source)
    binary = build.cache_root() / "bin" / f"{name}-{key}" / name
    if binary.is_file():
        return binary
    with file_lock(build.cache_root() / f".{name}-{key}.lock"):
        if not binary.is_file():
            _build_go_tool(name, source, binary, key)
    return binary


def kstatus() -> Path:
    """Path of the kstatus helper for the current sources; builds it first if needed."""
    return go_tool("kstatus")


def argocd_health() -> Path:
    """Path of the argocd-health helper for the current sources; builds it first if needed."""
    return go_tool("argocd-health")


def _build_go_tool(name: str, source: Path, binary: Path, key: str) -> None:
    go = build.find_go()
    # Built from a copy so that the build can never rewrite the checked-in go.mod/go.sum.
    src = build.cache_root() / "src" / f"{name}-{key}"
    shutil.rmtree(src, ignore_errors=True)
    src.mkdir(parents=True)
    for file in GO_TOOL_FILES:
        shutil.copyfile(source / file, src / file)
    log = build.cache_root() / "logs" / f"build-{name}-{key}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    tmp = binary.with_name(f"{name}.tmp")
    tmp.parent.mkdir(parents=True, exist_ok=True)
    # -mod=readonly: a go.sum that does not cover every module fails instead of being patched.
    env = {**build.go_env(), "GOFLAGS": "-mod=readonly"}
    print(f"[tools] building {name} (log: {log})", file=sys.stderr)
    start = time.monotonic()
    with log.open("w") as out:
        result = subprocess.run(
            [str(go), "build", "-trimpath", "-ldflags", "-s -w", "-o", str(tmp), "."],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=src,
            timeout=BUILD_TIMEOUT,
            check=False,
        )
    if result.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
        raise AssertionError(f"building {name} failed (log {log}):\n{tail}")
    os.replace(tmp, binary)
    elapsed = time.monotonic() - start
    print(f"[tools] {name} built in {elapsed:.0f}s: {binary}", file=sys.stderr)


def _json_tool(command: list[str], objects: list[dict[str, Any]]) -> Any:
    """Run a helper that reads a JSON list of objects on stdin and answers JSON on stdout."""
    result = subprocess.run(
        command, input=json.dumps(objects), capture_output=True, text=True, timeout=60, check=False
    )
    if result.returncode != 0:
        name = Path(command[0]).name
        raise AssertionError(f"{name} failed ({result.returncode}): {result.stderr}")
    return json.loads(result.stdout)


def kstatus_verdicts(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """kstatus' verdict ({"name", "status", "message", "conditions"}) for each object."""
    verdicts: list[dict[str, Any]] = _json_tool([str(kstatus())], objects)
    return verdicts


def argocd_health_verdicts(script: Path, objects: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Argo CD's health ({"status", "message"}, plus "error" when the script failed) of each
    object under the health script `script` (one helper process for all of them)."""
    verdicts: list[dict[str, str]] = _json_tool([str(argocd_health()), str(script)], objects)
    return verdicts
