"""Container images for real nodes, made here: no Docker engine exists.

The Aidbox stand-in and the pause binary (Go sources in sandbox/standin/) are built once into
the cache; each image is one uncompressed layer packed as an OCI image layout tarball, which
`ctr images import` loads into a node's containerd. One tarball holds every tag of the stand-in:
the tags share the layer and differ only in the STANDIN_VERSION of their config.

Releases for the sandbox's registry (registry.py) are made by standin_release(): the stand-in
built with its version (and, for a release that fails at start, the failure message) compiled
in, as an OciImage (manifest and blobs) that Registry.push uploads. synthetic_release() makes
one without building anything, for pods that are simulated and never pull. Both label their
config with org.opencontainers.image.version, where the operator reads a release's version.
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
from .errors import SandboxError
from .files import file_lock

STANDIN_REPOSITORY = "localhost/aidbox-standin"
PAUSE_IMAGE = "localhost/sandbox-pause:1"
# Tags built by default: two releases so a test can roll from one to the other.
STANDIN_TAGS = ("2510.1", "2510.2")
STANDIN_UID = 1000

MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
_CONFIG = "application/vnd.oci.image.config.v1+json"
_LAYER = "application/vnd.oci.image.layer.v1.tar"
# The label the operator reads a release's version from (runtime/registry.py).
VERSION_LABEL = "org.opencontainers.image.version"


def standin_image(tag: str) -> str:
    return f"{STANDIN_REPOSITORY}:{tag}"


def _sources() -> dict[str, bytes]:
    root = resources.files("aidbox_sandbox").joinpath("standin")
    files = {"go.mod": root.joinpath("go.mod").read_bytes()}
    for package in ("aidbox", "pause", "pgstart"):
        for source in root.joinpath(package).iterdir():
            if source.name.endswith(".go"):
                files[f"{package}/{source.name}"] = source.read_bytes()
    return files


def _go_build(out: Path, packages: tuple[str, ...], ldflags: str, progress: build.Progress) -> Path:
    """Build `packages` of the stand-in module (static, CGO off) into `out`, once."""
    files = _sources()
    binaries = [package.removeprefix("./") for package in packages]
    if all((out / b).is_file() for b in binaries):
        return out
    with file_lock(build.cache_root() / "standin.lock"):
        if all((out / b).is_file() for b in binaries):
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
            ["build", "-trimpath", "-ldflags", ldflags, "-o", f"{tmp}/", *packages],
            src,
            log,
            "building the Aidbox stand-in",
            progress,
        )
        shutil.rmtree(out, ignore_errors=True)
        tmp.rename(out)
        shutil.rmtree(src, ignore_errors=True)
    return out


def _sources_digest(*extra: str) -> str:
    files = _sources()
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + files[name] + b"\0")
    for part in extra:
        digest.update(part.encode() + b"\0")
    return digest.hexdigest()[:16]


def build_binaries(progress: build.Progress = print) -> Path:
    """Build the stand-in and pause (static, CGO off) into the cache; return their folder."""
    out = build.cache_root() / "standin" / _sources_digest()
    return _go_build(out, ("./aidbox", "./pause", "./pgstart"), "-s -w", progress)


def _ldflag_value(name: str, value: str) -> str:
    """`-X main.<name>=<value>` quoted for go's -ldflags splitting."""
    quote = next((q for q in ("'", '"') if q not in value), None)
    if quote is None or "\n" in value:
        raise SandboxError(f"{name} {value!r} holds both quote characters or a line break")
    return f"-X {quote}main.{name}={value}{quote}"


def build_release_binary(
    version: str, fail_start: str = "", progress: build.Progress = print
) -> Path:
    """The stand-in built as one release: `version` (and, when set, the start-up failure
    `fail_start`) compiled in, so the image needs no environment to be that release."""
    ldflags = " ".join(
        ["-s -w", _ldflag_value("version", version), _ldflag_value("failStart", fail_start)]
    )
    out = build.cache_root() / "standin" / f"release-{_sources_digest(ldflags)}"
    return _go_build(out, ("./aidbox",), ldflags, progress) / "aidbox"


# ---------------------------------------------------------------- OCI layout


def add_entry(tar: tarfile.TarFile, name: str, data: bytes | None, mode: int) -> None:
    info = tarfile.TarInfo(name)
    info.mode = mode
    info.mtime = 0
    if data is None:
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
    else:
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))


def binary_layer(binary: Path, target: str) -> bytes:
    """One reproducible layer: the binary, a passwd naming uid 1000, and a writable /tmp."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for folder in ("etc", "tmp", "usr", "usr/local", "usr/local/bin"):
            add_entry(tar, folder, None, 0o1777 if folder == "tmp" else 0o755)
        passwd = f"root:x:0:0::/:/nonexistent\naidbox:x:{STANDIN_UID}:{STANDIN_UID}::/tmp:/no\n"
        add_entry(tar, "etc/passwd", passwd.encode(), 0o644)
        add_entry(tar, "etc/group", f"root:x:0:\naidbox:x:{STANDIN_UID}:\n".encode(), 0o644)
        add_entry(tar, target.lstrip("/"), binary.read_bytes(), 0o755)
    return buf.getvalue()


@dataclass(frozen=True)
class ImageSpec:
    name: str  # full reference, e.g. localhost/aidbox-standin:2510.1
    entrypoint: tuple[str, ...]
    env: tuple[str, ...]
    user: str
    labels: tuple[tuple[str, str], ...] = ()  # the config's Labels


def _blob(blobs: dict[str, bytes], data: bytes) -> dict[str, Any]:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    blobs[digest] = data
    return {"digest": digest, "size": len(data)}


def _manifest(blobs: dict[str, bytes], layer_ref: dict[str, Any], image: ImageSpec) -> bytes:
    """The image's config and manifest; the config goes into `blobs`, the manifest is returned."""
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "User": image.user,
            "Entrypoint": list(image.entrypoint),
            "Env": ["PATH=/usr/local/bin:/usr/bin:/bin", *image.env],
            "WorkingDir": "/tmp",
            **({"Labels": dict(image.labels)} if image.labels else {}),
        },
        "rootfs": {"type": "layers", "diff_ids": [layer_ref["digest"]]},
    }
    config_ref = _blob(blobs, json.dumps(config, sort_keys=True).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": {"mediaType": _CONFIG, **config_ref},
        "layers": [{"mediaType": _LAYER, **layer_ref}],
    }
    return json.dumps(manifest, sort_keys=True).encode()


@dataclass(frozen=True)
class OciImage:
    """One image as a registry stores it: the manifest and the blobs it names."""

    manifest: bytes
    blobs: dict[str, bytes]  # digest -> content: the config and the layer

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.manifest).hexdigest()


def oci_image(layer: bytes, image: ImageSpec) -> OciImage:
    blobs: dict[str, bytes] = {}
    manifest = _manifest(blobs, _blob(blobs, layer), image)
    return OciImage(manifest, blobs)


def write_oci_archive(path: Path, layer: bytes, images: list[ImageSpec]) -> Path:
    """An OCI image layout tarball holding one manifest per image, all sharing `layer`."""
    blobs: dict[str, bytes] = {}
    layer_ref = _blob(blobs, layer)
    manifests = []
    for image in images:
        manifest_ref = _blob(blobs, _manifest(blobs, layer_ref, image))
        annotations = {
            "io.containerd.image.name": image.name,
            "org.opencontainers.image.ref.name": image.name.rsplit(":", 1)[1],
        }
        platform = {"architecture": "amd64", "os": "linux"}
        entry = {"mediaType": MANIFEST_MEDIA_TYPE, **manifest_ref, "platform": platform}
        manifests.append({**entry, "annotations": annotations})
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json"}
    index["manifests"] = manifests
    tmp = path.with_suffix(".tmp")
    with tarfile.open(tmp, mode="w", format=tarfile.PAX_FORMAT) as tar:
        add_entry(tar, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}', 0o644)
        add_entry(tar, "index.json", json.dumps(index, sort_keys=True).encode(), 0o644)
        for folder in ("blobs", "blobs/sha256"):
            add_entry(tar, folder, None, 0o755)
        for digest, data in sorted(blobs.items()):
            add_entry(tar, f"blobs/sha256/{digest.split(':', 1)[1]}", data, 0o644)
    tmp.rename(path)
    return path


def standin_release(
    version: str, fail_start: str = "", progress: build.Progress = print
) -> OciImage:
    """The stand-in as one release image: `version` compiled in and, when `fail_start` is set,
    a binary that always fails at start with that message (see standin/aidbox/main.go)."""
    binary = build_release_binary(version, fail_start, progress)
    return oci_image(binary_layer(binary, "/usr/local/bin/aidbox"), _release_spec(version))


def _release_spec(version: str) -> ImageSpec:
    return ImageSpec(
        f"aidbox:{version}",
        ("/usr/local/bin/aidbox",),
        (),
        f"{STANDIN_UID}:{STANDIN_UID}",
        ((VERSION_LABEL, version),),
    )


def synthetic_release(version: str) -> OciImage:
    """A release image that is never run (pods on kwok nodes pull nothing): the stand-in's
    config and version label over a one-file layer, made without building anything. Same
    version, same digest."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        add_entry(tar, "synthetic-release", f"{version}\n".encode(), 0o644)
    return oci_image(buf.getvalue(), _release_spec(version))


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
            folder / "pause.oci.tar", binary_layer(bins / "pause", "/usr/local/bin/pause"), [pause]
        ),
        write_oci_archive(
            folder / "standin.oci.tar",
            binary_layer(bins / "aidbox", "/usr/local/bin/aidbox"),
            standins,
        ),
    ]
