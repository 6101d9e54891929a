"""Container images for real nodes, made here: no registry and no Docker engine exist.

The Aidbox stand-in and the pause binary (Go sources in sandbox/standin/) are built once into
the cache; each image is one uncompressed layer packed as an OCI image layout tarball, which
`ctr images import` loads into a node's containerd. One tarball holds every tag of the stand-in:
the tags share the layer and differ only in the STANDIN_VERSION of their config.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from . import build
from .files import file_lock

STANDIN_REPOSITORY = "localhost/aidbox-standin"
PAUSE_IMAGE = "localhost/sandbox-pause:1"
# Tags built by default: two releases so a test can roll from one to the other.
STANDIN_TAGS = ("2510.1", "2510.2")
STANDIN_UID = 1000

_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
_CONFIG = "application/vnd.oci.image.config.v1+json"
_LAYER = "application/vnd.oci.image.layer.v1.tar"


def standin_image(tag: str) -> str:
    return f"{STANDIN_REPOSITORY}:{tag}"


def _sources() -> dict[str, bytes]:
    root = resources.files("aidbox_sandbox").joinpath("standin")
    files = {"go.mod": root.joinpath("go.mod").read_bytes()}
    for package in ("aidbox", "pause"):
        files[f"{package}/main.go"] = root.joinpath(package, "main.go").read_bytes()
    return files


def build_binaries(progress: build.Progress = print) -> Path:
    """Build the stand-in and pause (static, CGO off) into the cache; return their folder."""
    files = _sources()
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + files[name] + b"\0")
    out = build.cache_root() / "standin" / digest.hexdigest()[:16]
    if all((out / b).is_file() for b in ("aidbox", "pause")):
        return out
    with file_lock(build.cache_root() / "standin.lock"):
        if all((out / b).is_file() for b in ("aidbox", "pause")):
            return out
        src = out.parent / f".src-{out.name}"
        shutil.rmtree(src, ignore_errors=True)
        for name, data in files.items():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            (src / name).write_bytes(data)
        tmp = out.parent / f".tmp-{out.name}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        log = build.cache_root() / "logs" / "build-standin.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        build.run_go(
            build.find_go(),
            ["build", "-trimpath", "-ldflags", "-s -w", "-o", f"{tmp}/", "./aidbox", "./pause"],
            src,
            log,
            "building the Aidbox stand-in",
            progress,
        )
        shutil.rmtree(out, ignore_errors=True)
        tmp.rename(out)
        shutil.rmtree(src, ignore_errors=True)
    return out


# ---------------------------------------------------------------- OCI layout


def _add(tar: tarfile.TarFile, name: str, data: bytes | None, mode: int) -> None:
    info = tarfile.TarInfo(name)
    info.mode = mode
    info.mtime = 0
    if data is None:
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
    else:
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))


def _layer(binary: Path, target: str) -> bytes:
    """One reproducible layer: the binary, a passwd naming uid 1000, and a writable /tmp."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for folder in ("etc", "tmp", "usr", "usr/local", "usr/local/bin"):
            _add(tar, folder, None, 0o1777 if folder == "tmp" else 0o755)
        passwd = f"root:x:0:0::/:/nonexistent\naidbox:x:{STANDIN_UID}:{STANDIN_UID}::/tmp:/no\n"
        _add(tar, "etc/passwd", passwd.encode(), 0o644)
        _add(tar, "etc/group", f"root:x:0:\naidbox:x:{STANDIN_UID}:\n".encode(), 0o644)
        _add(tar, target.lstrip("/"), binary.read_bytes(), 0o755)
    return buf.getvalue()


@dataclass(frozen=True)
class ImageSpec:
    name: str  # full reference, e.g. localhost/aidbox-standin:2510.1
    entrypoint: tuple[str, ...]
    env: tuple[str, ...]
    user: str


def _blob(blobs: dict[str, bytes], data: bytes) -> dict[str, Any]:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    blobs[digest] = data
    return {"digest": digest, "size": len(data)}


def write_oci_archive(path: Path, layer: bytes, images: list[ImageSpec]) -> Path:
    """An OCI image layout tarball holding one manifest per image, all sharing `layer`."""
    blobs: dict[str, bytes] = {}
    layer_ref = _blob(blobs, layer)
    manifests = []
    for image in images:
        config = {
            "architecture": "amd64",
            "os": "linux",
            "config": {
                "User": image.user,
                "Entrypoint": list(image.entrypoint),
                "Env": ["PATH=/usr/local/bin:/usr/bin:/bin", *image.env],
                "WorkingDir": "/tmp",
            },
            "rootfs": {"type": "layers", "diff_ids": [layer_ref["digest"]]},
        }
        config_ref = _blob(blobs, json.dumps(config, sort_keys=True).encode())
        manifest = {
            "schemaVersion": 2,
            "mediaType": _MANIFEST,
            "config": {"mediaType": _CONFIG, **config_ref},
            "layers": [{"mediaType": _LAYER, **layer_ref}],
        }
        manifest_ref = _blob(blobs, json.dumps(manifest, sort_keys=True).encode())
        annotations = {
            "io.containerd.image.name": image.name,
            "org.opencontainers.image.ref.name": image.name.rsplit(":", 1)[1],
        }
        platform = {"architecture": "amd64", "os": "linux"}
        entry = {"mediaType": _MANIFEST, **manifest_ref, "platform": platform}
        manifests.append({**entry, "annotations": annotations})
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json"}
    index["manifests"] = manifests
    tmp = path.with_suffix(".tmp")
    with tarfile.open(tmp, mode="w", format=tarfile.PAX_FORMAT) as tar:
        _add(tar, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}', 0o644)
        _add(tar, "index.json", json.dumps(index, sort_keys=True).encode(), 0o644)
        for folder in ("blobs", "blobs/sha256"):
            _add(tar, folder, None, 0o755)
        for digest, data in sorted(blobs.items()):
            _add(tar, f"blobs/sha256/{digest.split(':', 1)[1]}", data, 0o644)
    tmp.rename(path)
    return path


def image_archives(folder: Path, progress: build.Progress = print) -> list[Path]:
    """Build (when needed) and pack the pause and stand-in images into `folder`."""
    bins = build_binaries(progress)
    folder.mkdir(parents=True, exist_ok=True)
    pause = ImageSpec(PAUSE_IMAGE, ("/usr/local/bin/pause",), (), "65535:65535")
    standins = [
        ImageSpec(
            standin_image(tag),
            ("/usr/local/bin/aidbox",),
            (f"STANDIN_VERSION={tag}",),
            f"{STANDIN_UID}:{STANDIN_UID}",
        )
        for tag in STANDIN_TAGS
    ]
    return [
        write_oci_archive(
            folder / "pause.oci.tar", _layer(bins / "pause", "/usr/local/bin/pause"), [pause]
        ),
        write_oci_archive(
            folder / "standin.oci.tar",
            _layer(bins / "aidbox", "/usr/local/bin/aidbox"),
            standins,
        ),
    ]
