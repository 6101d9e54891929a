"""Build the pinned sandbox binaries from Go modules, once, into a cache folder.

Wrapper modules ship with the package (gomod/k8s, gomod/kwok, gomod/registry for the OCI
registry real-node tests may ask for, gomod/flux-source and gomod/flux-kustomize for the GitOps
tests' Flux); their go.mod/go.sum pin every version with checksums.
They are copied to the cache and built there with the Go toolchain; binaries, GOMODCACHE and
GOCACHE all live under the cache folder (default ~/.cache/aidbox-operator, or
$AIDBOX_CACHE_DIR), keyed by version, and are reused later.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from .errors import SandboxError
from .files import file_lock, tail

KUBERNETES_VERSION = "1.37.2"
# etcd server module version that k8s.io/kubernetes v1.37.2 pins in its go.mod.
ETCD_VERSION = "3.7.0"
KWOK_VERSION = "0.8.0"
# The CNCF distribution registry (an OCI registry for the real nodes to pull from), on demand.
REGISTRY_VERSION = "3.1.2"
# Flux's source-controller and kustomize-controller (the GitOps tests), one release for both.
FLUX_VERSION = "1.9.6"
MIN_GO = (1, 26)

Progress = Callable[[str], None]

K8S_BINARIES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "etcd")
KWOK_BINARIES = ("kwok",)

GO_MISSING = (
    "Go {need} or newer is required to build the sandbox (kube-apiserver, etcd and kwok are "
    "built from source modules on first use). Install it from https://go.dev/dl/ "
    "(e.g. `curl -fsSL https://go.dev/dl/go1.26.8.linux-amd64.tar.gz | "
    "tar -C /usr/local -xz` and add /usr/local/go/bin to PATH), or point $AIDBOX_GO at a go "
    "binary. Debian bookworm's `golang-go` package is Go 1.19, which is too old. {detail}"
)


def cache_root() -> Path:
    env = os.environ.get("AIDBOX_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "aidbox-operator"


@dataclass(frozen=True)
class _Target:
    name: str  # gomod/<name> unless `module` names another wrapper module
    packages: tuple[str, ...]
    binaries: tuple[str, ...]
    ldflags: str
    module: str = ""
    # `go mod download` of the whole module graph first; off where the graph names a module the
    # proxy does not serve (a test dependency of a dependency): `go build` fetches what it needs.
    download_all: bool = True

    @property
    def module_dir(self) -> str:
        return self.module or self.name


def _k8s_ldflags() -> str:
    flags = ["-s", "-w"]
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        major, minor, _ = KUBERNETES_VERSION.split(".")
        flags += [
            f"-X {pkg}.gitVersion=v{KUBERNETES_VERSION}",
            f"-X {pkg}.gitMajor={major}",
            f"-X {pkg}.gitMinor={minor}",
            f"-X {pkg}.gitTreeState=clean",
        ]
    return " ".join(flags)


TARGETS = (
    _Target(
        "k8s",
        (
            "k8s.io/kubernetes/cmd/kube-apiserver",
            "k8s.io/kubernetes/cmd/kube-controller-manager",
            "k8s.io/kubernetes/cmd/kube-scheduler",
            "k8s.io/kubernetes/cmd/kubectl",
            "go.etcd.io/etcd/server/v3",
        ),
        K8S_BINARIES,
        _k8s_ldflags(),
    ),
    _Target(
        "kwok",
        ("sigs.k8s.io/kwok/cmd/kwok",),
        KWOK_BINARIES,
        "-s -w",
    ),
)


# Real nodes only: built from the control plane's own wrapper module (same pins), on demand, so
# `make run` (kwok nodes only) never pays for them.
NODE_BINARIES = ("kubelet", "kube-proxy")
NODE_TARGET = _Target(
    "k8s-node",
    ("k8s.io/kubernetes/cmd/kubelet", "k8s.io/kubernetes/cmd/kube-proxy"),
    NODE_BINARIES,
    _k8s_ldflags(),
    module="k8s",
)


# The registry: its own wrapper module and binary folder (keyed by its version), built only when
# a test asks for a registry.
REGISTRY_TARGET = _Target(
    "registry",
    ("github.com/distribution/distribution/v3/cmd/registry",),
    ("registry",),
    f"-s -w -X github.com/distribution/distribution/v3/version.version=v{REGISTRY_VERSION}",
)


# Flux's two controllers: a wrapper module each (their dependency sets differ), built only when
# the GitOps tests ask for Flux. Their CRDs are copied from the same modules next to them.
FLUX_TARGETS = (
    _Target(
        "flux-source",
        ("github.com/fluxcd/source-controller",),
        ("source-controller",),
        "-s -w",
        download_all=False,
    ),
    _Target(
        "flux-kustomize",
        ("github.com/fluxcd/kustomize-controller",),
        ("kustomize-controller",),
        "-s -w",
        download_all=False,
    ),
)
FLUX_MODULES = ("github.com/fluxcd/source-controller", "github.com/fluxcd/kustomize-controller")


def bin_dir() -> Path:
    """Folder holding every sandbox binary for the pinned versions."""
    key = f"k8s-v{KUBERNETES_VERSION}-etcd-v{ETCD_VERSION}-kwok-v{KWOK_VERSION}"
    return cache_root() / "bin" / key


def _module_files(name: str) -> dict[str, bytes]:
    folder = resources.files("aidbox_sandbox").joinpath("gomod", name)
    out: dict[str, bytes] = {}
    for entry in folder.iterdir():
        if entry.name in ("go.mod", "go.sum") or entry.name.endswith(".go"):
            out[entry.name] = entry.read_bytes()
    if "go.mod" not in out:
        raise SandboxError(f"packaged Go module gomod/{name} is missing go.mod")
    return out


def _stamp(files: dict[str, bytes]) -> str:
    digest = hashlib.sha256()
    for fname in sorted(files):
        digest.update(fname.encode() + b"\0" + files[fname] + b"\0")
    return digest.hexdigest()


def go_candidates() -> list[Path]:
    """Where to look for go: $AIDBOX_GO, PATH, then the go.dev tarball's usual place."""
    names = [os.environ.get("AIDBOX_GO"), shutil.which("go"), "/usr/local/go/bin/go"]
    return [Path(c) for c in names if c and Path(c).is_file()]


def find_go() -> Path:
    """Return a usable go binary or raise SandboxError saying exactly what to install."""
    need = f"{MIN_GO[0]}.{MIN_GO[1]}"
    found = go_candidates()
    if not found:
        raise SandboxError(GO_MISSING.format(need=need, detail="No `go` found on PATH."))
    go = found[0]
    try:
        out = subprocess.run(
            [str(go), "env", "GOVERSION"],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "GOTOOLCHAIN": "local"},
            timeout=60,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        detail = f"`{go} env` failed: {exc}"
        raise SandboxError(GO_MISSING.format(need=need, detail=detail)) from exc
    m = re.match(r"go(\d+)\.(\d+)", out)
    if not m or (int(m.group(1)), int(m.group(2))) < MIN_GO:
        raise SandboxError(
            GO_MISSING.format(need=need, detail=f"Found {go} reporting {out or 'no version'}.")
        )
    return go


def go_env() -> dict[str, str]:
    root = cache_root() / "go"
    env = dict(os.environ)
    env.update(
        GOMODCACHE=str(root / "mod"),
        GOCACHE=str(root / "build"),
        GOTOOLCHAIN="local",
        GOFLAGS="-mod=mod",
        CGO_ENABLED="0",
    )
    return env


def _run_go(go: Path, args: list[str], cwd: Path, log: Path, what: str, progress: Progress) -> None:
    start = time.monotonic()
    with log.open("ab") as fh:
        fh.write(f"\n$ go {' '.join(args)}\n".encode())
        fh.flush()
        proc = subprocess.Popen(
            [str(go), *args],
            cwd=cwd,
            env=go_env(),
            stdout=fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        last = start
        try:
            while proc.poll() is None:
                time.sleep(0.5)
                now = time.monotonic()
                if now - last >= 15:
                    last = now
                    progress(f"  ... {what}: {now - start:.0f}s elapsed (log: {log})")
        except BaseException:
            proc.terminate()
            proc.wait()
            raise
    if proc.returncode != 0:
        raise SandboxError(
            f"{what} failed (go exited with {proc.returncode}); last lines of {log}:\n{tail(log)}"
        )


def _target_stamp(target: _Target) -> str:
    stamp = _stamp(_module_files(target.module_dir))
    if target.module:  # a second target of one module: its own package list counts too
        stamp = hashlib.sha256(f"{stamp} {' '.join(target.packages)}".encode()).hexdigest()
    return stamp


def _build_target(target: _Target, go: Path, out: Path, progress: Progress) -> None:
    files = _module_files(target.module_dir)
    stamp = _target_stamp(target)
    marker = out / f".{target.name}.stamp"
    if (
        marker.exists()
        and marker.read_text() == stamp
        and all((out / b).is_file() for b in target.binaries)
    ):
        return
    src = cache_root() / "src" / f"{target.module_dir}-{stamp[:12]}"
    src.mkdir(parents=True, exist_ok=True)
    for fname, data in files.items():
        (src / fname).write_bytes(data)
    log = cache_root() / "logs" / f"build-{target.name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("")
    tmp = out.parent / f".{out.name}.{target.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    what = f"building {', '.join(target.binaries)}"
    progress(f"{what} (first run takes minutes; later runs reuse {cache_root()})")
    started = time.monotonic()
    if target.download_all:
        what_dl = f"downloading modules for {target.name}"
        _run_go(go, ["mod", "download"], src, log, what_dl, progress)
    _run_go(
        go,
        ["build", "-trimpath", "-ldflags", target.ldflags, "-o", f"{tmp}/", *target.packages],
        src,
        log,
        what,
        progress,
    )
    # go names the binary of go.etcd.io/etcd/server/v3 "server" (the /v3 suffix is skipped).
    for built in ("server", "v3"):
        if (tmp / built).is_file() and not (tmp / "etcd").exists():
            (tmp / built).rename(tmp / "etcd")
    missing = [b for b in target.binaries if not (tmp / b).is_file()]
    if missing:
        raise SandboxError(f"go build did not produce {missing}; see {log}")
    out.mkdir(parents=True, exist_ok=True)
    for b in target.binaries:
        os.replace(tmp / b, out / b)
    shutil.rmtree(tmp, ignore_errors=True)
    marker.write_text(stamp)
    progress(f"built {', '.join(target.binaries)} in {time.monotonic() - started:.0f}s")


def ensure_binaries(progress: Progress = print) -> Path:
    """Build what is missing and return the folder holding all binaries."""
    out = bin_dir()
    with file_lock(cache_root() / "build.lock"):
        todo = []
        for target in TARGETS:
            marker = out / f".{target.name}.stamp"
            ok = marker.exists() and marker.read_text() == _target_stamp(target)
            if not ok or not all((out / b).is_file() for b in target.binaries):
                todo.append(target)
        if not todo:
            return out
        go = find_go()
        for target in todo:
            _build_target(target, go, out, progress)
    return out


def ensure_node_binaries(progress: Progress = print) -> Path:
    """Build kubelet and kube-proxy (real nodes) when missing; return the binaries' folder."""
    out = bin_dir()
    with file_lock(cache_root() / "build.lock"):
        marker = out / f".{NODE_TARGET.name}.stamp"
        ok = marker.exists() and marker.read_text() == _target_stamp(NODE_TARGET)
        if not ok or not all((out / b).is_file() for b in NODE_TARGET.binaries):
            _build_target(NODE_TARGET, find_go(), out, progress)
    return out


def registry_bin_dir() -> Path:
    return cache_root() / "bin" / f"registry-v{REGISTRY_VERSION}"


def ensure_registry_binary(progress: Progress = print) -> Path:
    """Build the distribution registry when missing; return the path of its binary."""
    out = registry_bin_dir()
    with file_lock(cache_root() / "build.lock"):
        marker = out / f".{REGISTRY_TARGET.name}.stamp"
        ok = marker.exists() and marker.read_text() == _target_stamp(REGISTRY_TARGET)
        if not ok or not (out / "registry").is_file():
            _build_target(REGISTRY_TARGET, find_go(), out, progress)
    return out / "registry"


def flux_bin_dir() -> Path:
    """Folder holding source-controller, kustomize-controller and crds/ (their CRDs)."""
    return cache_root() / "bin" / f"flux-v{FLUX_VERSION}"


def ensure_flux_binaries(progress: Progress = print) -> Path:
    """Build Flux's controllers and gather their CRDs when missing; return their folder."""
    out = flux_bin_dir()
    # A lock of its own: the control plane's build need not wait for Flux's, nor Flux's for it.
    with file_lock(cache_root() / "flux-build.lock"):
        go: Path | None = None
        for target in FLUX_TARGETS:
            marker = out / f".{target.name}.stamp"
            ok = marker.exists() and marker.read_text() == _target_stamp(target)
            if not ok or not all((out / b).is_file() for b in target.binaries):
                go = go or find_go()
                _build_target(target, go, out, progress)
        if not (out / "crds" / ".done").exists():
            _copy_flux_crds(go or find_go(), out / "crds")
    return out


def _copy_flux_crds(go: Path, crds: Path) -> None:
    """The CRD files of config/crd/bases in each controller's module of FLUX_VERSION."""
    crds.mkdir(parents=True, exist_ok=True)
    for module in FLUX_MODULES:
        answer = subprocess.run(
            [str(go), "mod", "download", "-json", f"{module}@v{FLUX_VERSION}"],
            capture_output=True,
            text=True,
            env=go_env(),
            cwd=crds,
            timeout=600,
            check=False,
        )
        if answer.returncode != 0:
            raise SandboxError(f"downloading {module} for its CRDs failed: {answer.stdout}")
        bases = Path(json.loads(answer.stdout)["Dir"]) / "config" / "crd" / "bases"
        for crd in sorted(bases.glob("*.yaml")):
            shutil.copyfile(crd, crds / crd.name)
    (crds / ".done").write_text(FLUX_VERSION)


# Shared with the other things built from Go sources (the stand-in images).

run_go = _run_go
