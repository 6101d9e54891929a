"""A real PostgreSQL for pods on real nodes: Debian's postgresql-15, packed as an image.

No Docker engine and no image registry out there: the image is made from this machine's own
install of the Debian package (installed with apt-get when missing). Its one layer holds the
server's and initdb's binaries at the paths the package compiled in, the server's modules
(without the LLVM JIT), its share folder, every shared library those need (found with ldd,
the dynamic loader included), UTC's zone file, dash as /bin/sh (initdb starts the server
through popen), and the entry point `pgstart` (Go, in the stand-in module), which does what an
image's entry script would. The archive is kept in the cache, keyed by the package's version
and the entry point's sources.
"""

from __future__ import annotations

import hashlib
import io
import re
import subprocess
import tarfile
from pathlib import Path

from . import build, hostdeps, images
from .errors import SandboxError
from .files import file_lock

POSTGRES_IMAGE = "localhost/sandbox-postgres:15"
POSTGRES_UID = 999
PACKAGE = "postgresql-15"
BIN = Path("/usr/lib/postgresql/15/bin")
LIB = Path("/usr/lib/postgresql/15/lib")
SHARE = Path("/usr/share/postgresql/15")
PROGRAMS = ("postgres", "initdb")
ZONES = ("UTC", "Etc/UTC")
# initdb starts the server through popen(), that is /bin/sh: Debian's dash.
SHELL = Path("/usr/bin/dash")
# Each pod gets an emptyDir there; PGDATA is a folder inside it that initdb makes (and owns).
DATA_MOUNT = "/var/lib/postgresql/data"
ENV = ("TZ=UTC", f"PGDATA={DATA_MOUNT}/pgdata", "TMPDIR=/tmp")


def _ensure_package(progress: build.Progress) -> str:
    if not (BIN / "postgres").is_file():
        hostdeps.apt_install([PACKAGE], progress)
    out = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", PACKAGE], capture_output=True, text=True, check=False
    )
    if out.returncode != 0 or not (BIN / "postgres").is_file():
        raise SandboxError(f"Debian's {PACKAGE} is not installed: {out.stderr.strip()}")
    return out.stdout.strip()


def _elf_files() -> list[Path]:
    modules = [p for p in sorted(LIB.glob("*.so")) if not p.name.startswith("llvmjit")]
    return [*(BIN / p for p in PROGRAMS), *modules, SHELL]


def _libraries(files: list[Path]) -> set[Path]:
    """Every shared object `files` load, and the dynamic loader, as ldd finds them here."""
    found: set[Path] = set()
    for chunk in range(0, len(files), 50):
        out = subprocess.run(
            ["ldd", *map(str, files[chunk : chunk + 50])],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        for line in out.splitlines():
            if "not found" in line:
                raise SandboxError(f"ldd: a library PostgreSQL needs is missing: {line.strip()}")
            match = re.search(r"(/\S+) \(0x", line)
            if match:
                found.add(Path(match.group(1)))
    return found


class _Layer:
    """A tar layer that makes each parent folder once, before the first entry inside it."""

    def __init__(self, tar: tarfile.TarFile) -> None:
        self.tar = tar
        self.folders: set[str] = set()

    def folder(self, name: str, mode: int = 0o755) -> None:
        parts = name.strip("/").split("/")
        for depth in range(1, len(parts) + 1):
            folder = "/".join(parts[:depth])
            if folder not in self.folders:
                self.folders.add(folder)
                images.add_entry(self.tar, folder, None, mode if depth == len(parts) else 0o755)

    def data(self, name: str, data: bytes, mode: int) -> None:
        parent = name.strip("/").rpartition("/")[0]
        if parent:
            self.folder(parent)
        images.add_entry(self.tar, name.strip("/"), data, mode)

    def file(self, path: Path, mode: int = 0o755) -> None:
        # The real file under the name it is asked by: symlinks (libfoo.so.1 -> .so.1.2) resolved.
        self.data(str(path), path.resolve().read_bytes(), mode)


def _layer(pgstart: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        layer = _Layer(tar)
        for folder, mode in (("tmp", 0o1777), ("var/run/postgresql", 0o1777), (DATA_MOUNT, 0o755)):
            layer.folder(folder, mode)
        user = f"postgres:x:{POSTGRES_UID}:{POSTGRES_UID}::/var/lib/postgresql:/nonexistent\n"
        layer.data("etc/passwd", f"root:x:0:0::/:/nonexistent\n{user}".encode(), 0o644)
        layer.data("etc/group", f"root:x:0:\npostgres:x:{POSTGRES_UID}:\n".encode(), 0o644)
        elves = _elf_files()
        for path in sorted({*elves, *_libraries(elves)}):
            layer.file(path)
        for path in sorted(SHARE.rglob("*")):
            if path.is_file():
                layer.file(path, path.stat().st_mode & 0o777)
        for zone in ZONES:
            layer.file(Path("/usr/share/zoneinfo") / zone, 0o644)
        layer.data("bin/sh", SHELL.read_bytes(), 0o755)
        layer.data("usr/local/bin/pgstart", pgstart.read_bytes(), 0o755)
    return buf.getvalue()


def image_archive(folder: Path, progress: build.Progress = print) -> Path:
    """The PostgreSQL image as an OCI layout tarball for `ctr images import` (built once)."""
    version = _ensure_package(progress)
    pgstart = images.build_binaries(progress) / "pgstart"
    recipe = f"{version}\0".encode() + pgstart.read_bytes() + Path(__file__).read_bytes()
    key = hashlib.sha256(recipe).hexdigest()[:16]
    path = folder / f"postgres-{key}.oci.tar"
    if path.is_file():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    with file_lock(folder / "postgres.lock"):
        if not path.is_file():
            progress(f"packing PostgreSQL {version} as {POSTGRES_IMAGE}")
            spec = images.ImageSpec(
                POSTGRES_IMAGE,
                ("/usr/local/bin/pgstart",),
                ENV,
                f"{POSTGRES_UID}:{POSTGRES_UID}",
            )
            images.write_oci_archive(path, _layer(pgstart), [spec])
    return path
