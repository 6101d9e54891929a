"""Pure parts of the sandbox's registry: its pins, configuration, containerd's hosts.toml, the
stand-in's release ldflags and OCI images."""

from __future__ import annotations

import hashlib
import json
import tarfile
from pathlib import Path

import pytest

from aidbox_sandbox import SandboxError, build, images, nodeconfig, registry


def test_registry_pin_matches_constant() -> None:
    folder = Path(build.__file__).parent / "gomod" / "registry"
    go_mod = (folder / "go.mod").read_text()
    assert f"github.com/distribution/distribution/v3 v{build.REGISTRY_VERSION}\n" in go_mod
    assert (folder / "go.sum").stat().st_size > 0
    assert f"v{build.REGISTRY_VERSION}" in build.REGISTRY_TARGET.ldflags
    assert build.registry_bin_dir().name == f"registry-v{build.REGISTRY_VERSION}"


def test_registry_config_is_loopback_only_with_deletes(tmp_path: Path) -> None:
    config = registry.registry_config(5123, tmp_path / "storage")
    assert config["http"]["addr"] == "127.0.0.1:5123"
    assert config["http"]["net"] == "tcp"
    assert "debug" not in config["http"]  # no second listener
    assert "auth" not in config and "tls" not in config["http"]
    assert config["storage"]["delete"] == {"enabled": True}
    assert config["storage"]["filesystem"]["rootdirectory"] == str(tmp_path / "storage")


def test_reference_names_the_loopback_host(tmp_path: Path) -> None:
    reg = registry.Registry(tmp_path)
    with pytest.raises(SandboxError, match="not running"):
        _ = reg.host
    reg.root.mkdir()
    (reg.root / "state.json").write_text(json.dumps({"pid": 1, "start": 0, "port": 5123}))
    assert reg.reference("aidbox", "2510.1") == "127.0.0.1:5123/aidbox:2510.1"
    assert reg.url == "http://127.0.0.1:5123"


def test_containerd_reads_registry_hosts(tmp_path: Path) -> None:
    node = nodeconfig.plan(tmp_path, tmp_path / "realnodes", 0, 7, "zone-a")
    toml = nodeconfig.containerd_toml(node)
    assert '[plugins."io.containerd.grpc.v1.cri".registry]' in toml
    assert f'config_path = "{node.dir / "certs.d"}"' in toml
    hosts = nodeconfig.registry_hosts_toml("127.0.0.1:5123")
    assert 'server = "http://127.0.0.1:5123"' in hosts
    assert '[host."http://127.0.0.1:5123"]' in hosts
    assert 'capabilities = ["pull", "resolve"]' in hosts


def test_release_ldflags_quote_the_message() -> None:
    assert images._ldflag_value("failStart", "a b") == "-X 'main.failStart=a b'"
    assert images._ldflag_value("failStart", "it's") == '-X "main.failStart=it\'s"'
    for bad in ("both ' and \"", "two\nlines"):
        with pytest.raises(SandboxError):
            images._ldflag_value("failStart", bad)


def test_oci_image_digest_is_the_manifest_hash_and_matches_the_archive(tmp_path: Path) -> None:
    spec = images.ImageSpec("localhost/x:1", ("/bin/x",), ("A=1",), "1000:1000")
    image = images.oci_image(b"layer-bytes", spec)
    assert image.digest == "sha256:" + hashlib.sha256(image.manifest).hexdigest()
    manifest = json.loads(image.manifest)
    assert manifest["mediaType"] == images.MANIFEST_MEDIA_TYPE
    named = {manifest["config"]["digest"]} | {layer["digest"] for layer in manifest["layers"]}
    assert named == set(image.blobs)
    # The archive real nodes import holds the very same manifest.
    archive = images.write_oci_archive(tmp_path / "x.oci.tar", b"layer-bytes", [spec])
    with tarfile.open(archive) as tar:
        index = json.load(tar.extractfile("index.json"))  # type: ignore[arg-type]
    assert index["manifests"][0]["digest"] == image.digest


def test_synthetic_release_carries_its_version_label_and_nothing_to_build() -> None:
    image = images.synthetic_release("2510.1")
    manifest = json.loads(image.manifest)
    config = json.loads(image.blobs[manifest["config"]["digest"]])
    assert config["config"]["Labels"] == {"org.opencontainers.image.version": "2510.1"}
    assert set(image.blobs) == {manifest["config"]["digest"], manifest["layers"][0]["digest"]}
    # The same version is the same image; another version is another digest.
    assert images.synthetic_release("2510.1").digest == image.digest
    assert images.synthetic_release("2510.2").digest != image.digest


def test_release_images_label_their_version() -> None:
    # standin_release and synthetic_release share this spec; images without labels keep
    # their configs (and digests) as before.
    spec = images._release_spec("2510.3")
    assert spec.labels == ((images.VERSION_LABEL, "2510.3"),)
    plain = images.oci_image(b"x", images.ImageSpec("localhost/x:1", ("/x",), (), "0:0"))
    config_digest = json.loads(plain.manifest)["config"]["digest"]
    assert "Labels" not in json.loads(plain.blobs[config_digest])["config"]
