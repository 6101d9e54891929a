"""The operator's RBAC from deploy/ on a test cluster, and a kubeconfig acting as its SA.

`operator_kubeconfig(...)` lets any test run the operator with exactly the permissions the
install grants, so a missing permission shows up as a 403 in a test instead of in production.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from helpers import wait_for
from kube_helpers import apply

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
OPERATOR_NAMESPACE = "aidbox-operator-system"
SERVICE_ACCOUNT = "aidbox-operator"
SERVICE_ACCOUNT_USER = f"system:serviceaccount:{OPERATOR_NAMESPACE}:{SERVICE_ACCOUNT}"
RBAC_KINDS = (
    "Namespace",
    "ServiceAccount",
    "Role",
    "ClusterRole",
    "RoleBinding",
    "ClusterRoleBinding",
)
TOKEN_SECONDS = 2 * 3600
FIELD_MANAGER = "tests-rbac"


def kubectl(sandbox: Any) -> str:
    """The sandbox's kubectl (the server's version), else the one on PATH."""
    if sandbox is not None:
        return str(sandbox.bin_dir / "kubectl")
    found = shutil.which("kubectl")
    if not found:
        raise AssertionError("kubectl not found on PATH (needed to render deploy/ with kustomize)")
    return found


def kustomize(sandbox: Any, overlay: str | Path) -> list[dict[str, Any]]:
    """`kubectl kustomize deploy/overlays/<overlay>` (or a directory) as a list of manifests."""
    path = Path(overlay)
    if not path.is_absolute():
        path = DEPLOY / "overlays" / overlay
    out = subprocess.run(
        [kubectl(sandbox), "kustomize", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if out.returncode != 0:
        raise AssertionError(f"kubectl kustomize {path} failed:\n{out.stderr}")
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def rbac_manifests(manifests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Namespace, ServiceAccount and RBAC objects, in an order the API server accepts."""
    picked = [m for m in manifests if m["kind"] in RBAC_KINDS]
    return sorted(picked, key=lambda m: RBAC_KINDS.index(m["kind"]))


def install_rbac(api_client: Any, sandbox: Any, overlay: str = "cluster-wide") -> None:
    """Server-side apply the overlay's Namespace/ServiceAccount/RBAC objects (idempotent)."""
    for manifest in rbac_manifests(kustomize(sandbox, overlay)):
        apply(api_client, manifest, manager=FIELD_MANAGER)
    core = client.CoreV1Api(api_client)
    wait_for(
        lambda: core.read_namespaced_service_account(SERVICE_ACCOUNT, OPERATOR_NAMESPACE),
        timeout=30,
        message=f"ServiceAccount {SERVICE_ACCOUNT}",
    )


def allowed(
    api_client: Any,
    verb: str,
    resource: str,
    *,
    group: str = "",
    namespace: str | None = None,
    name: str | None = None,
    subresource: str | None = None,
    user: str = SERVICE_ACCOUNT_USER,
) -> bool:
    """SubjectAccessReview: may `user` (by default the operator's ServiceAccount) do this?"""
    groups = ["system:serviceaccounts", f"system:serviceaccounts:{OPERATOR_NAMESPACE}"]
    review = client.V1SubjectAccessReview(
        spec=client.V1SubjectAccessReviewSpec(
            user=user,
            groups=[*groups, "system:authenticated"],
            resource_attributes=client.V1ResourceAttributes(
                verb=verb,
                group=group,
                resource=resource,
                subresource=subresource,
                namespace=namespace,
                name=name,
            ),
        )
    )
    answer = client.AuthorizationV1Api(api_client).create_subject_access_review(review)
    return bool(answer.status.allowed)


def service_account_token(api_client: Any, seconds: int = TOKEN_SECONDS) -> str:
    """A bound token for the operator's ServiceAccount (TokenRequest API)."""
    request = client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=seconds)
    )
    answer = client.CoreV1Api(api_client).create_namespaced_service_account_token(
        SERVICE_ACCOUNT, OPERATOR_NAMESPACE, request
    )
    token: str = answer.status.token
    return token


def _write_token_kubeconfig(api_client: Any, sandbox: Any, path: Path, token: str) -> Path:
    if sandbox is not None:
        written: Path = sandbox.write_token_kubeconfig(path, token)
        return written
    # An existing cluster: same server and CA as the admin client, bearer-token auth.
    cfg = api_client.configuration
    cluster: dict[str, Any] = {"server": cfg.host}
    if cfg.ssl_ca_cert:
        cluster["certificate-authority"] = str(cfg.ssl_ca_cert)
    if not cfg.verify_ssl:
        cluster["insecure-skip-tls-verify"] = True
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "cluster", "cluster": cluster}],
        "users": [{"name": SERVICE_ACCOUNT, "user": {"token": token}}],
        "contexts": [
            {"name": SERVICE_ACCOUNT, "context": {"cluster": "cluster", "user": SERVICE_ACCOUNT}}
        ],
        "current-context": SERVICE_ACCOUNT,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc))
    path.chmod(0o600)
    return path


def operator_kubeconfig(api_client: Any, sandbox: Any, workdir: Path) -> Path:
    """Install the cluster-wide RBAC from deploy/ and return a kubeconfig acting as the operator.

    Idempotent: server-side apply of the Namespace, ServiceAccount, (Cluster)Roles and bindings
    from `kubectl kustomize deploy/overlays/cluster-wide` (not the CRD, not the Deployment).
    The token comes from the TokenRequest API and is valid for 2 hours.

    RBAC cannot grant by namespace glob, so the grants stay cluster-wide for an operator
    started with `--namespace 't-*'`; a glob filters cluster-wide watches and needs no
    Namespace watch (none is granted).
    """
    install_rbac(api_client, sandbox, "cluster-wide")
    # The RBAC authorizer reads bindings from an informer: wait until they are in effect.
    wait_for(
        lambda: (
            allowed(api_client, "list", "aidboxclusters", group="aidbox.io")
            and allowed(
                api_client,
                "create",
                "leases",
                group="coordination.k8s.io",
                namespace=OPERATOR_NAMESPACE,
            )
        ),
        timeout=30,
        message="the operator's RBAC in effect",
    )
    token = service_account_token(api_client)
    return _write_token_kubeconfig(api_client, sandbox, workdir / "operator.kubeconfig", token)
