"""Pure parts of the sandbox: certificates, stages, manifests, Go discovery."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

import aidbox_sandbox as sandbox
from aidbox_sandbox import build, controlplane, kubeapi, pki


def test_versions() -> None:
    assert sandbox.KUBERNETES_VERSION == "1.37.2"
    assert sandbox.KWOK_VERSION == "0.8.0"
    assert sandbox.ETCD_VERSION == "3.7.0"
    assert sandbox.NOT_READY_LABEL == "sandbox.aidbox.io/not-ready"


def test_gomod_pins_match_constants() -> None:
    k8s = (Path(build.__file__).parent / "gomod" / "k8s" / "go.mod").read_text()
    kwok = (Path(build.__file__).parent / "gomod" / "kwok" / "go.mod").read_text()
    assert f"k8s.io/kubernetes v{sandbox.KUBERNETES_VERSION}" in k8s
    assert f"go.etcd.io/etcd/server/v3 v{sandbox.ETCD_VERSION}" in k8s
    assert f"sigs.k8s.io/kwok v{sandbox.KWOK_VERSION}" in kwok
    for name in ("k8s", "kwok"):
        assert (Path(build.__file__).parent / "gomod" / name / "go.sum").stat().st_size > 0


def test_certificates(tmp_path: Path) -> None:
    paths = pki.generate(tmp_path)
    ca = x509.load_pem_x509_certificate(paths.ca_cert.read_bytes())
    server = x509.load_pem_x509_certificate(paths.server_cert.read_bytes())
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("127.0.0.1") in san.get_values_for_type(x509.IPAddress)
    assert ipaddress.ip_address("10.96.0.1") in san.get_values_for_type(x509.IPAddress)
    assert {"localhost", "kubernetes.default.svc"} <= set(san.get_values_for_type(x509.DNSName))
    assert server.issuer == ca.subject
    eku = server.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in eku

    admin = x509.load_pem_x509_certificate(paths.client_cert("admin").read_bytes())
    cn = admin.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    orgs = [a.value for a in admin.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    assert cn == "sandbox-admin" and orgs == ["system:masters"]
    kcm = x509.load_pem_x509_certificate(paths.client_cert("controller-manager").read_bytes())
    assert kcm.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == (
        "system:kube-controller-manager"
    )
    assert paths.ca_key.stat().st_mode & 0o077 == 0
    assert b"PUBLIC KEY" in paths.sa_pub.read_bytes()


def test_front_proxy_certificate_has_its_own_ca(tmp_path: Path) -> None:
    """Aggregated API servers trust the request's user headers only from this certificate: it
    must come from a CA that signs nothing else, under the name the API server allows."""
    paths = pki.generate(tmp_path)
    ca = x509.load_pem_x509_certificate(paths.ca_cert.read_bytes())
    proxy_ca = x509.load_pem_x509_certificate(paths.front_proxy_ca_cert.read_bytes())
    proxy = x509.load_pem_x509_certificate(paths.front_proxy_client_cert.read_bytes())
    assert proxy.issuer == proxy_ca.subject != ca.subject
    proxy.verify_directly_issued_by(proxy_ca)
    cn = proxy.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert cn == pki.FRONT_PROXY_CLIENT
    eku = proxy.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.CLIENT_AUTH in eku
    assert paths.front_proxy_client_key.stat().st_mode & 0o077 == 0
    flags = controlplane.aggregation_flags(paths)
    assert f"--requestheader-allowed-names={pki.FRONT_PROXY_CLIENT}" in flags
    assert f"--requestheader-client-ca-file={paths.front_proxy_ca_cert}" in flags


def test_stages_load_and_not_ready_stage_wins() -> None:
    docs = controlplane.stage_documents()
    names = {d["metadata"]["name"] for d in docs}
    assert {
        "sandbox-node-initialize",
        "sandbox-pod-ready",
        "sandbox-pod-not-ready",
        "sandbox-pod-delete",
    } <= names
    assert all(d["kind"] == "Stage" and d["apiVersion"] == "kwok.x-k8s.io/v1alpha1" for d in docs)
    not_ready = next(d for d in docs if d["metadata"]["name"] == "sandbox-pod-not-ready")
    assert not_ready["spec"]["weight"] == 1
    assert not_ready["spec"]["selector"]["matchLabels"] == {sandbox.NOT_READY_LABEL: "true"}
    status = not_ready["spec"]["next"]["statusTemplate"]
    assert "phase: Running" in status and 'status: "False"' in status


def test_the_slow_start_release_becomes_ready_late_and_wins() -> None:
    docs = {d["metadata"]["name"]: d for d in controlplane.stage_documents()}
    slow, ready = docs["sandbox-pod-slow-start-release"], docs["sandbox-pod-ready"]
    assert slow["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/version": "2510.997"}
    assert slow["spec"]["delay"]["durationMilliseconds"] >= 1000
    assert slow["spec"]["weight"] > docs["sandbox-pod-not-ready"]["spec"]["weight"]
    assert slow["spec"]["next"] == ready["spec"]["next"]


def test_nodes_spread_over_zones() -> None:
    nodes = [controlplane.node_manifest(i) for i in range(6)]
    assert [n["metadata"]["labels"][controlplane.ZONE_LABEL] for n in nodes[:3]] == list(
        controlplane.ZONES
    )
    assert len({n["metadata"]["labels"]["kubernetes.io/hostname"] for n in nodes}) == 6
    assert len({n["status"]["addresses"][0]["address"] for n in nodes}) == 6
    assert nodes[0]["metadata"]["labels"]["type"] == "kwok"
    assert nodes[0]["status"]["capacity"]["pods"] == "1100"


def test_kubeconfigs(tmp_path: Path) -> None:
    cfg = kubeapi.kubeconfig_dict("https://127.0.0.1:1234", b"PEM", {"token": "t"})
    assert cfg["clusters"][0]["cluster"]["server"] == "https://127.0.0.1:1234"
    box = sandbox.Sandbox(state_dir=tmp_path / "sb")
    with pytest.raises(sandbox.SandboxError, match="not up"):
        box.write_token_kubeconfig(tmp_path / "x", "t")
    assert controlplane.AUDIT_POLICY["omitStages"] == ["RequestReceived"]
    assert yaml.safe_load(yaml.safe_dump(controlplane.AUDIT_POLICY))["rules"] == [
        {"level": "Metadata"}
    ]


def test_status_of_never_started_sandbox(tmp_path: Path) -> None:
    box = sandbox.Sandbox(state_dir=tmp_path / "sb")
    st = box.status()
    assert not st.running and st.processes == [] and st.rss_mb == 0
    box.down()  # no-op, must not raise


def test_missing_go_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(build, "go_candidates", list)
    with pytest.raises(sandbox.SandboxError) as err:
        build.find_go()
    msg = str(err.value)
    assert "Go 1.26 or newer is required" in msg
    assert "https://go.dev/dl/" in msg


def test_too_old_go_is_rejected(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = tmp_path / "go"
    fake.write_text("#!/bin/sh\necho go1.19.8\n")
    fake.chmod(0o755)
    monkeypatch.setattr(build, "go_candidates", lambda: [fake])
    with pytest.raises(sandbox.SandboxError, match=r"reporting go1\.19\.8"):
        build.find_go()
