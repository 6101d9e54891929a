"""The OCI image layout tarballs the sandbox packs for real nodes (pure: no Go, no containerd)."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

from aidbox_sandbox.images import ImageSpec, binary_layer, write_oci_archive


def test_archive_is_a_valid_oci_layout_with_one_manifest_per_tag(tmp_path: Path) -> None:
    binary = tmp_path / "server"
    binary.write_bytes(b"\x7fELF fake binary")
    layer = binary_layer(binary, "/usr/local/bin/server")
    specs = [
        ImageSpec(f"localhost/x:{tag}", ("/usr/local/bin/server",), (f"V={tag}",), "1000:1000")
        for tag in ("1", "2")
    ]
    archive = write_oci_archive(tmp_path / "x.tar", layer, specs)
    with tarfile.open(archive) as tar:
        files = {m.name: tar_file_from(tar, m.name) for m in tar.getmembers() if m.isfile()}
    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    for name, data in files.items():
        if name.startswith("blobs/sha256/"):
            assert hashlib.sha256(data).hexdigest() == name.rsplit("/", 1)[1]
    index = json.loads(files["index.json"])
    names = [m["annotations"]["io.containerd.image.name"] for m in index["manifests"]]
    assert names == ["localhost/x:1", "localhost/x:2"]
    for entry, tag in zip(index["manifests"], ("1", "2"), strict=True):
        manifest = json.loads(files[f"blobs/sha256/{entry['digest'].split(':')[1]}"])
        config = json.loads(files[f"blobs/sha256/{manifest['config']['digest'].split(':')[1]}"])
        assert config["config"]["User"] == "1000:1000"
        assert f"V={tag}" in config["config"]["Env"]
        assert config["rootfs"]["diff_ids"] == [manifest["layers"][0]["digest"]]
    with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert members["usr/local/bin/server"].mode == 0o755
    assert members["tmp"].mode == 0o1777
    assert b"aidbox:x:1000:1000" in tar_file(layer, "etc/passwd")
    assert layer == binary_layer(binary, "/usr/local/bin/server"), "layers are reproducible"


def tar_file_from(tar: tarfile.TarFile, name: str) -> bytes:
    member = tar.extractfile(name)
    assert member is not None
    return member.read()


def tar_file(layer: bytes, name: str) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
        return tar_file_from(tar, name)
