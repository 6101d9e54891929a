"""The operator's own image, built from the project's Dockerfile without a Docker engine.

buildah (Debian package) builds the Dockerfile unchanged. Its base image,
python:3.11.13-slim-bookworm, lives on Docker Hub, which is out of reach here; a local stand-in
under that name is made once with debootstrap (Debian bookworm minbase + python3 + python3-venv,
so Debian's Python 3.11.2, not 3.11.13) and kept only in the project's private buildah storage
under the cache folder: it is never pushed anywhere. `--pull-never` keeps buildah from looking
for any image on a registry. The machine's CA bundle and pip settings are mounted into the
build's RUN steps (not into the image) so that pip reaches PyPI through this machine's proxy.
The result is written as a docker-archive tarball that `ctr images import` loads into a node.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

from . import build, hostdeps
from .errors import SandboxError
from .files import file_lock

BASE_IMAGE = "docker.io/library/python:3.11.13-slim-bookworm"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
PACKAGES = ("buildah", "debootstrap")
BUILD_MOUNTS = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pip.conf")


def _root() -> Path:
    return build.cache_root() / "operator-image"


def _buildah(*args: str) -> list[str]:
    root = _root()
    # Own mount namespace: whatever buildah mounts while building stays out of the host's.
    return [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "buildah",
        f"--root={root / 'storage'}",
        f"--runroot={root / 'run'}",
        "--storage-driver=vfs",
        *args,
    ]


def _run(args: list[str], log: Path, what: str, timeout: float = 900) -> str:
    with log.open("a") as fh:
        fh.write(f"\n$ {' '.join(args)}\n")
    result = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
    with log.open("a") as fh:
        fh.write(result.stdout + result.stderr)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-20:])
        raise SandboxError(f"{what} failed; see {log}:\n{tail}")
    return result.stdout


def _ensure_packages(progress: build.Progress) -> None:
    missing = [p for p in PACKAGES if not shutil.which(p)]
    if missing:
        hostdeps.apt_install(missing, progress)


def _base_image(log: Path) -> None:
    """The local stand-in for the Python base image (made once)."""
    have = subprocess.run(_buildah("inspect", "--type=image", BASE_IMAGE), capture_output=True)
    if have.returncode == 0:
        return
    rootfs = _root() / "python-rootfs"
    shutil.rmtree(rootfs, ignore_errors=True)
    _run(
        [
            *("unshare", "--mount", "--propagation", "private", "debootstrap"),
            *("--variant=minbase", "--include=python3,python3-venv"),
            *("bookworm", str(rootfs), DEBIAN_MIRROR),
        ],
        log,
        "debootstrap of the Python base stand-in",
    )
    for junk in ("var/cache/apt/archives", "usr/share/doc", "usr/share/man", "var/lib/apt/lists"):
        shutil.rmtree(rootfs / junk, ignore_errors=True)
    (rootfs / "usr/local/bin/python").symlink_to("/usr/bin/python3")
    container = _run(_buildah("from", "scratch"), log, "buildah from scratch").strip()
    _run(_buildah("copy", container, str(rootfs), "/"), log, "buildah copy")
    _run(
        _buildah(
            "config",
            "--env=PATH=/usr/local/bin:/usr/bin:/bin",
            "--cmd=python3",
            "--label=org.opencontainers.image.description=local stand-in for "
            "python:3.11.13-slim-bookworm (Debian bookworm python3), never pushed",
            container,
        ),
        log,
        "buildah config",
    )
    _run(_buildah("commit", "-q", "--rm", container, BASE_IMAGE), log, "buildah commit")
    shutil.rmtree(rootfs, ignore_errors=True)


def _source_digest(repo: Path) -> str:
    digest = hashlib.sha256()
    files = [repo / "Dockerfile", repo / "pyproject.toml", *sorted((repo / "src").rglob("*"))]
    for path in files:
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(repo)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def build_operator_image(repo: Path, image: str, progress: build.Progress = print) -> Path:
    """Build `image` from repo/Dockerfile; return a docker-archive tarball of it (cached by the
    digest of the Dockerfile, pyproject.toml and src/)."""
    root = _root()
    root.mkdir(parents=True, exist_ok=True)
    archive = root / f"operator-{_source_digest(repo)}.tar"
    if archive.exists():
        return archive
    with file_lock(root / "build.lock"):
        if archive.exists():
            return archive
        _ensure_packages(progress)
        log = build.cache_root() / "logs" / "build-operator-image.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text("")
        progress("building the operator image from the Dockerfile with buildah")
        _base_image(log)
        # The machine's own CA and pip settings, for the RUN steps only (not in the image).
        mounts = [f"--volume={f}:{f}:ro" for f in BUILD_MOUNTS if Path(f).exists()]
        _run(
            _buildah(
                "bud",
                "--pull-never",
                "--isolation=chroot",
                *mounts,
                f"--tag={image}",
                f"--file={repo / 'Dockerfile'}",
                str(repo),
            ),
            log,
            "buildah bud",
        )
        for old in root.glob("operator-*.tar"):
            old.unlink()
        tmp = archive.with_suffix(".tmp")
        _run(_buildah("push", "-q", image, f"docker-archive:{tmp}:{image}"), log, "buildah push")
        tmp.rename(archive)
    return archive
