"""Traefik, a real ingress controller for pods on real nodes: built from its released Go module
and packed as a one-binary image (no Docker engine, no registry), like the stand-in.

Traefik's go.mod replaces three modules with its own forks, which `go install pkg@version`
refuses, so it is built as the main module: the source the module proxy serves for the release
(`go mod download`), copied out of the module cache, built with its own go.mod and go.sum
(-mod=readonly: nothing is resolved anew). CGO off, static. v3.6.12 is the newest release the
module proxy this project builds from can build: v3.7.11 and v3.7.13 replace
github.com/abbot/go-http-auth with a fork version the proxy refuses, and lego's DNS providers
of v3.7.13 need 14 SDK versions it refuses too ("403 This module version is not available").

The binary is kept in <cache>/bin/traefik-<version>/, its log in <cache>/logs/. Timings in
docs/real-nodes.md.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from . import build, images
from .files import file_lock

TRAEFIK_MODULE = "github.com/traefik/traefik/v3"
TRAEFIK_VERSION = "v3.6.12"
TRAEFIK_IMAGE = f"localhost/sandbox-traefik:{TRAEFIK_VERSION}"
TRAEFIK_UID = images.STANDIN_UID  # the one unprivileged user the binary layer's passwd names
LDFLAGS = f"-s -w -X {TRAEFIK_MODULE}/pkg/version.Version={TRAEFIK_VERSION}"


def binary_path() -> Path:
    return build.cache_root() / "bin" / f"traefik-{TRAEFIK_VERSION}" / "traefik"


def ensure_binary(progress: build.Progress = print) -> Path:
    """Path of the Traefik binary; built first when missing (minutes when cold)."""
    binary = binary_path()
    if binary.is_file():
        return binary
    # Another session may be building it right now: wait for it instead of building twice.
    with file_lock(build.cache_root() / f".traefik-{TRAEFIK_VERSION}.lock"):
        if not binary.is_file():
            _build(binary, progress)
    return binary


def _writable_copy(source: Path, target: Path) -> None:
    """Copy a module out of the module cache, whose files and folders are read-only."""
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, target, copy_function=shutil.copyfile)
    for folder, _, _ in os.walk(target):
        os.chmod(folder, 0o755)


def _build(binary: Path, progress: build.Progress) -> None:
    go = build.find_go()
    root = build.cache_root()
    log = root / "logs" / f"build-traefik-{TRAEFIK_VERSION}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("")
    release = f"{TRAEFIK_MODULE}@{TRAEFIK_VERSION}"
    progress(f"building Traefik {TRAEFIK_VERSION} (minutes when cold; log: {log})")
    build.run_go(go, ["mod", "download", release], root, log, f"downloading {release}", progress)
    src = root / "src" / f"traefik-{TRAEFIK_VERSION}"
    _writable_copy(Path(build.go_env()["GOMODCACHE"]) / release, src)
    tmp = binary.with_name("traefik.tmp")
    tmp.parent.mkdir(parents=True, exist_ok=True)
    args = ["build", "-mod=readonly", "-trimpath", "-ldflags", LDFLAGS, "-o", str(tmp)]
    build.run_go(go, [*args, "./cmd/traefik"], src, log, "building Traefik", progress)
    os.replace(tmp, binary)
    shutil.rmtree(src, ignore_errors=True)


def image_archive(folder: Path, progress: build.Progress = print) -> Path:
    """Traefik as an OCI layout tarball for `ctr images import` (packed once)."""
    path = folder / f"traefik-{TRAEFIK_VERSION}.oci.tar"
    if path.is_file():
        return path
    binary = ensure_binary(progress)
    folder.mkdir(parents=True, exist_ok=True)
    with file_lock(folder / "traefik.lock"):
        if not path.is_file():
            spec = images.ImageSpec(
                TRAEFIK_IMAGE,
                ("/usr/local/bin/traefik",),
                (),
                f"{TRAEFIK_UID}:{TRAEFIK_UID}",
                ((images.VERSION_LABEL, TRAEFIK_VERSION),),
            )
            layer = images.binary_layer(binary, "/usr/local/bin/traefik")
            images.write_oci_archive(path, layer, [spec])
    return path
