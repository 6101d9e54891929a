"""Certificates and keys for the sandbox control plane, made with `cryptography`.

One self-signed CA signs the API server's serving certificate and every client certificate.
The service-account key pair is a separate RSA key (the API server verifies tokens with the
public half, the controller-manager and the API server sign with the private half).

A second CA, the front proxy's, signs only the certificate the API server presents when it
proxies a request to an aggregated API server (the aggregation layer, e.g. metrics-server):
that server trusts the user named in the request's headers only from a holder of it. Kept apart
from the main CA so that no ordinary client certificate can pass itself off as the proxy.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# First address of --service-cluster-ip-range; the "kubernetes" Service gets it.
SERVICE_CIDR = "10.96.0.0/16"
KUBERNETES_SERVICE_IP = "10.96.0.1"

API_SERVER_DNS_NAMES = (
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)
API_SERVER_IPS = ("127.0.0.1", KUBERNETES_SERVICE_IP)

_VALIDITY = dt.timedelta(days=3650)

Key = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


@dataclass(frozen=True)
class ClientIdentity:
    """A client certificate to issue: file stem, user name (CN) and groups (O)."""

    stem: str
    user: str
    groups: tuple[str, ...] = ()


# Who talks to the API server. The admin identity shows up as user.username in the audit log.
ADMIN = ClientIdentity("admin", "sandbox-admin", ("system:masters",))
CLIENTS = (
    ADMIN,
    ClientIdentity("controller-manager", "system:kube-controller-manager"),
    ClientIdentity("scheduler", "system:kube-scheduler"),
    ClientIdentity("kwok", "sandbox-kwok", ("system:masters",)),
    # The API server's identity towards real nodes' kubelets (logs, exec, port-forward).
    ClientIdentity("apiserver-kubelet-client", "kube-apiserver-kubelet-client"),
)
KUBELET_CLIENT = CLIENTS[-1]
# The API server's identity towards aggregated API servers (--requestheader-allowed-names).
FRONT_PROXY_CLIENT = "front-proxy-client"


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: Key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _name(cn: str, orgs: tuple[str, ...] = ()) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attrs)


def _builder(
    subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey
) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
    )


def make_ca(cn: str = "aidbox-sandbox-ca") -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = _new_key()
    name = _name(cn)
    cert = (
        _builder(name, name, key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _leaf(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    subject: x509.Name,
    usage: x509.ObjectIdentifier,
    sans: list[x509.GeneralName] | None = None,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = _new_key()
    builder = (
        _builder(subject, ca_cert.subject, key.public_key())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return key, builder.sign(ca_key, hashes.SHA256())


def api_server_sans() -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = [x509.DNSName(n) for n in API_SERVER_DNS_NAMES]
    names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in API_SERVER_IPS]
    return names


@dataclass(frozen=True)
class PkiPaths:
    """Where the files live inside <state>/pki."""

    root: Path

    @property
    def ca_cert(self) -> Path:
        return self.root / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.root / "ca.key"

    @property
    def server_cert(self) -> Path:
        return self.root / "apiserver.crt"

    @property
    def server_key(self) -> Path:
        return self.root / "apiserver.key"

    @property
    def sa_key(self) -> Path:
        return self.root / "sa.key"

    @property
    def sa_pub(self) -> Path:
        return self.root / "sa.pub"

    @property
    def front_proxy_ca_cert(self) -> Path:
        return self.root / "front-proxy-ca.crt"

    @property
    def front_proxy_client_cert(self) -> Path:
        return self.root / "front-proxy-client.crt"

    @property
    def front_proxy_client_key(self) -> Path:
        return self.root / "front-proxy-client.key"

    def client_cert(self, stem: str) -> Path:
        return self.root / f"{stem}.crt"

    def client_key(self, stem: str) -> Path:
        return self.root / f"{stem}.key"


def _write(path: Path, data: bytes, private: bool = False) -> None:
    path.write_bytes(data)
    if private:
        path.chmod(0o600)


def generate(root: Path) -> PkiPaths:
    """Write a fresh CA, serving cert, client certs and service-account keys under root."""
    root.mkdir(parents=True, exist_ok=True)
    paths = PkiPaths(root)
    ca_key, ca_cert = make_ca()
    _write(paths.ca_cert, _cert_pem(ca_cert))
    _write(paths.ca_key, _key_pem(ca_key), private=True)

    key, cert = _leaf(
        ca_key,
        ca_cert,
        _name("kube-apiserver"),
        ExtendedKeyUsageOID.SERVER_AUTH,
        api_server_sans(),
    )
    _write(paths.server_cert, _cert_pem(cert))
    _write(paths.server_key, _key_pem(key), private=True)

    for client in CLIENTS:
        key, cert = _leaf(
            ca_key,
            ca_cert,
            _name(client.user, client.groups),
            ExtendedKeyUsageOID.CLIENT_AUTH,
        )
        _write(paths.client_cert(client.stem), _cert_pem(cert))
        _write(paths.client_key(client.stem), _key_pem(key), private=True)

    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _write(paths.sa_key, _key_pem(sa_key), private=True)
    _write(
        paths.sa_pub,
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    )
    _front_proxy(paths)
    return paths


def _front_proxy(paths: PkiPaths) -> None:
    """The front-proxy CA and the one client certificate it signs (its key is not kept)."""
    ca_key, ca_cert = make_ca("aidbox-sandbox-front-proxy-ca")
    _write(paths.front_proxy_ca_cert, _cert_pem(ca_cert))
    key, cert = _leaf(ca_key, ca_cert, _name(FRONT_PROXY_CLIENT), ExtendedKeyUsageOID.CLIENT_AUTH)
    _write(paths.front_proxy_client_cert, _cert_pem(cert))
    _write(paths.front_proxy_client_key, _key_pem(key), private=True)


def issue(
    paths: PkiPaths,
    stem: str,
    cn: str,
    orgs: tuple[str, ...] = (),
    server_ips: tuple[str, ...] = (),
    server_dns: tuple[str, ...] = (),
) -> tuple[Path, Path]:
    """Sign one more certificate with the sandbox CA (e.g. a real node's kubelet): a client
    certificate, or a serving one when IPs or DNS names are given. Returns (cert, key)."""
    ca_key = serialization.load_pem_private_key(paths.ca_key.read_bytes(), password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise TypeError("the sandbox CA key is not an EC key")
    ca_cert = x509.load_pem_x509_certificate(paths.ca_cert.read_bytes())
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in server_dns]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in server_ips]
    usage = ExtendedKeyUsageOID.SERVER_AUTH if sans else ExtendedKeyUsageOID.CLIENT_AUTH
    key, cert = _leaf(ca_key, ca_cert, _name(cn, orgs), usage, sans or None)
    cert_path, key_path = paths.root / f"{stem}.crt", paths.root / f"{stem}.key"
    _write(cert_path, _cert_pem(cert))
    _write(key_path, _key_pem(key), private=True)
    return cert_path, key_path
