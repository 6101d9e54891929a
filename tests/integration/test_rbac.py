"""The RBAC in deploy/ on a real API server: what the operator's ServiceAccount may and may not do.

Allowed: exactly the requests the operator makes (measured from the audit log while it
reconciled examples/minimal.yaml as this ServiceAccount, see docs/install.md). Refused:
everything around them that a compromised operator could abuse.
"""

from __future__ import annotations

import copy
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from helpers import wait_for
from kube_helpers import apply
from rbac import (
    OPERATOR_NAMESPACE,
    SERVICE_ACCOUNT,
    allowed,
    install_rbac,
    kubectl,
    kustomize,
    operator_kubeconfig,
    rbac_manifests,
)

APP_NS = "some-app-namespace"  # any namespace: the cluster-wide overlay grants everywhere
LEASES = "coordination.k8s.io"

# (verb, group, resource, subresource, namespace, name)
NEEDED = [
    ("get", "aidbox.io", "aidboxclusters", None, APP_NS, None),
    ("list", "aidbox.io", "aidboxclusters", None, None, None),
    ("watch", "aidbox.io", "aidboxclusters", None, None, None),
    ("patch", "aidbox.io", "aidboxclusters", "status", APP_NS, "aidbox"),
    *[
        (verb, group, resource, None, APP_NS, "aidbox")
        for group, resource in (("apps", "deployments"), ("", "services"))
        for verb in ("get", "create", "patch")
    ],
    *[(v, "policy", "poddisruptionbudgets", None, APP_NS, "x") for v in ("patch", "delete")],
    *[
        (v, group, resource, None, APP_NS, "x")
        for group, resource in (
            ("monitoring.coreos.com", "servicemonitors"),
            ("networking.k8s.io", "ingresses"),
            ("gateway.networking.k8s.io", "httproutes"),
            ("autoscaling", "horizontalpodautoscalers"),
            ("networking.k8s.io", "networkpolicies"),
        )
        for v in ("get", "create", "patch", "delete")
    ],
    *[
        (verb, group, resource, None, None, None)
        for group, resource in (
            ("apps", "deployments"),
            ("", "services"),
            ("policy", "poddisruptionbudgets"),
            ("networking.k8s.io", "ingresses"),
            ("gateway.networking.k8s.io", "httproutes"),
            ("autoscaling", "horizontalpodautoscalers"),
            ("networking.k8s.io", "networkpolicies"),
            ("", "pods"),
            ("", "configmaps"),
            ("", "secrets"),
        )
        for verb in ("list", "watch")
    ],
    ("get", "", "configmaps", None, APP_NS, "aidbox"),
    ("get", "", "secrets", None, APP_NS, "aidbox"),
    ("create", "", "secrets", None, APP_NS, None),
    # Allowed only because the operator owns <cluster>-auth-keys: RBAC cannot name it in
    # advance, so patch (and create) apply to every Secret. Documented in docs/install.md.
    ("patch", "", "secrets", None, APP_NS, "aidbox-auth-keys"),
    ("patch", "", "secrets", None, APP_NS, "someone-elses-secret"),
    ("create", "", "events", None, APP_NS, None),
    ("list", "apiextensions.k8s.io", "customresourcedefinitions", None, None, None),
    ("watch", "apiextensions.k8s.io", "customresourcedefinitions", None, None, None),
    # Release channels are cluster-scoped: read, and write their status; their Events go to
    # the default namespace.
    *[(v, "aidbox.io", "aidboxreleasechannels", None, None, None) for v in ("list", "watch")],
    ("get", "aidbox.io", "aidboxreleasechannels", None, None, "stable"),
    ("patch", "aidbox.io", "aidboxreleasechannels", "status", None, "stable"),
    ("create", "", "events", None, "default", None),
    ("create", LEASES, "leases", None, OPERATOR_NAMESPACE, None),
    ("get", LEASES, "leases", None, OPERATOR_NAMESPACE, "aidbox-operator"),
    ("update", LEASES, "leases", None, OPERATOR_NAMESPACE, "aidbox-operator"),
    # The cluster-wide install reads secrets everywhere (one watch without a namespace),
    # kube-system included.
    ("get", "", "secrets", None, "kube-system", "anything"),
]

NOT_NEEDED = [
    ("list", "", "namespaces", None, None, None),  # globs filter cluster-wide watches
    ("watch", "", "namespaces", None, None, None),
    ("delete", "", "namespaces", None, None, "default"),
    ("create", "", "namespaces", None, None, None),
    ("delete", "apps", "deployments", None, APP_NS, "aidbox"),  # GC deletes them, not us
    ("update", "apps", "deployments", None, APP_NS, "aidbox"),
    ("delete", "", "services", None, APP_NS, "aidbox"),
    ("update", "", "configmaps", None, APP_NS, "aidbox"),
    ("patch", "", "configmaps", None, APP_NS, "aidbox"),
    ("create", "", "configmaps", None, APP_NS, None),
    ("delete", "", "configmaps", None, APP_NS, "aidbox"),
    ("update", "", "secrets", None, APP_NS, "aidbox"),
    ("delete", "", "secrets", None, APP_NS, "aidbox"),
    ("deletecollection", "", "secrets", None, APP_NS, None),
    ("get", "", "pods", None, APP_NS, "x"),
    ("create", "", "pods", None, APP_NS, None),
    ("delete", "", "pods", None, APP_NS, "x"),
    ("create", "", "pods", "exec", APP_NS, "x"),
    ("create", "", "pods", "eviction", APP_NS, "x"),
    ("create", "", "serviceaccounts", "token", APP_NS, "default"),
    ("patch", "aidbox.io", "aidboxclusters", None, APP_NS, "aidbox"),
    ("update", "aidbox.io", "aidboxclusters", None, APP_NS, "aidbox"),
    # A channel is the user's: the operator writes its status only.
    ("patch", "aidbox.io", "aidboxreleasechannels", None, None, "stable"),
    ("delete", "aidbox.io", "aidboxreleasechannels", None, None, "stable"),
    ("delete", "aidbox.io", "aidboxclusters", None, APP_NS, "aidbox"),
    ("create", "aidbox.io", "aidboxclusters", None, APP_NS, None),
    ("patch", "", "events", None, APP_NS, "x"),
    ("delete", "", "events", None, APP_NS, "x"),
    ("create", "apiextensions.k8s.io", "customresourcedefinitions", None, None, None),
    ("get", "", "nodes", None, None, "sandbox-node-0"),
    # kube-system: nothing beyond what the cluster-wide role grants everywhere
    ("list", "", "serviceaccounts", None, "kube-system", None),
    ("get", LEASES, "leases", None, "kube-system", "kube-controller-manager"),
    ("list", "rbac.authorization.k8s.io", "roles", None, "kube-system", None),
    ("get", "", "endpoints", None, "kube-system", "kube-dns"),
    ("create", "apps", "deployments", "scale", "kube-system", "x"),
    # leases: only the one named aidbox-operator, only in the operator's namespace
    ("create", LEASES, "leases", None, APP_NS, None),
    ("update", LEASES, "leases", None, OPERATOR_NAMESPACE, "someone-else"),
    ("delete", LEASES, "leases", None, OPERATOR_NAMESPACE, "aidbox-operator"),
    ("list", LEASES, "leases", None, OPERATOR_NAMESPACE, None),
    # privilege escalation
    ("escalate", "rbac.authorization.k8s.io", "clusterroles", None, None, "aidbox-operator"),
    ("bind", "rbac.authorization.k8s.io", "clusterroles", None, None, "cluster-admin"),
    ("create", "rbac.authorization.k8s.io", "clusterrolebindings", None, None, None),
    ("create", "rbac.authorization.k8s.io", "rolebindings", None, APP_NS, None),
    ("patch", "rbac.authorization.k8s.io", "roles", None, OPERATOR_NAMESPACE, "x"),
    ("impersonate", "", "serviceaccounts", None, "kube-system", "default"),
]


def _ids(case: tuple[Any, ...]) -> str:
    verb, group, resource, sub, ns, name = case
    what = f"{resource}/{sub}" if sub else resource
    return f"{verb}-{group or 'core'}-{what}-{ns or 'cluster'}-{name or ''}".rstrip("-")


@pytest.fixture(scope="module")
def cluster_wide(api_client: Any, sandbox: Any) -> None:
    install_rbac(api_client, sandbox, "cluster-wide")
    wait_for(
        lambda: allowed(api_client, "list", "aidboxclusters", group="aidbox.io"),
        timeout=30,
        message="the cluster-wide RBAC in effect",
    )


def _check(api_client: Any, case: tuple[Any, ...], **kw: Any) -> bool:
    verb, group, resource, sub, ns, name = case
    return allowed(
        api_client,
        verb,
        resource,
        group=group,
        subresource=sub,
        namespace=ns,
        name=name,
        **kw,
    )


@pytest.mark.parametrize("case", NEEDED, ids=_ids)
def test_cluster_wide_allows_what_the_operator_does(
    api_client: Any, cluster_wide: None, case: tuple[Any, ...]
) -> None:
    assert _check(api_client, case), f"the operator needs {case} but deploy/ refuses it"


@pytest.mark.parametrize("case", NOT_NEEDED, ids=_ids)
def test_cluster_wide_refuses_what_the_operator_never_does(
    api_client: Any, cluster_wide: None, case: tuple[Any, ...]
) -> None:
    assert not _check(api_client, case), f"deploy/ grants {case}, which the operator never needs"


def test_no_wildcards_anywhere(sandbox: Any) -> None:
    for overlay in ("cluster-wide", "single-namespace"):
        for doc in rbac_manifests(kustomize(sandbox, overlay)):
            for rule in doc.get("rules", []):
                for field in ("verbs", "resources", "apiGroups", "resourceNames"):
                    assert "*" not in rule.get(field, []), (overlay, doc["metadata"], rule)
                assert "nonResourceURLs" not in rule


def test_token_kubeconfig_acts_as_the_service_account(
    api_client: Any, sandbox: Any, tmp_path: Path, crd: None
) -> None:
    """operator_kubeconfig: a TokenRequest token, checked with kubectl auth can-i / whoami.
    `crd`: kubectl resolves aidboxclusters.aidbox.io by discovery (without the CRD, "no")."""
    kubeconfig = operator_kubeconfig(api_client, sandbox, tmp_path)
    # Idempotent: a second call re-applies and issues a fresh token.
    assert operator_kubeconfig(api_client, sandbox, tmp_path) == kubeconfig

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [kubectl(sandbox), "--kubeconfig", str(kubeconfig), *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    whoami = run("auth", "whoami", "-o", "jsonpath={.status.userInfo.username}")
    assert whoami.stdout == f"system:serviceaccount:{OPERATOR_NAMESPACE}:{SERVICE_ACCOUNT}", (
        whoami.stderr
    )
    assert run("auth", "can-i", "watch", "secrets", "-A").stdout.strip() == "yes"
    assert (
        run(
            "auth", "can-i", "patch", "aidboxclusters.aidbox.io", "--subresource=status", "-n", "x"
        ).stdout.strip()
        == "yes"
    )
    assert run("auth", "can-i", "delete", "namespaces").stdout.strip() == "no"
    assert run("auth", "can-i", "create", "pods", "-n", "default").stdout.strip() == "no"
    listing = run("get", "configmaps", "-A", "-o", "name")
    assert listing.returncode == 0, listing.stderr
    refused = run("create", "configmap", "nope", "-n", "default")
    assert refused.returncode != 0
    assert "forbidden" in refused.stderr


# -- single namespace ----------------------------------------------------------------------------


def _isolated_single_namespace(
    manifests: list[dict[str, Any]], suffix: str, operator_ns: str, watched_ns: str
) -> list[dict[str, Any]]:
    """The overlay's RBAC with its own names, so it cannot disturb the cluster-wide install."""
    namespaces = {OPERATOR_NAMESPACE: operator_ns, "aidbox": watched_ns}
    out = []
    for original in manifests:
        doc = copy.deepcopy(original)
        meta = doc["metadata"]
        if doc["kind"] == "Namespace":
            meta["name"] = namespaces[meta["name"]]
        elif doc["kind"] in ("ClusterRole", "ClusterRoleBinding"):
            meta["name"] += suffix
        if "namespace" in meta:
            meta["namespace"] = namespaces[meta["namespace"]]
        if doc.get("roleRef", {}).get("kind") == "ClusterRole":
            doc["roleRef"]["name"] += suffix
        for subject in doc.get("subjects", []):
            subject["namespace"] = namespaces[subject["namespace"]]
        out.append(doc)
    return out


@pytest.fixture
def single_namespace(api_client: Any, sandbox: Any, namespace: str) -> Iterator[dict[str, str]]:
    suffix = f"-t{secrets.token_hex(3)}"
    operator_ns = f"aidbox-op{suffix}"
    manifests = _isolated_single_namespace(
        rbac_manifests(kustomize(sandbox, "single-namespace")), suffix, operator_ns, namespace
    )
    kinds = [d["kind"] for d in manifests]
    assert "ClusterRoleBinding" in kinds and "RoleBinding" in kinds, kinds
    assert not any(
        d["kind"] == "ClusterRoleBinding" and d["roleRef"]["name"] == f"aidbox-operator{suffix}"
        for d in manifests
    ), "single-namespace must not bind the operator's rules cluster-wide"
    for doc in manifests:
        apply(api_client, doc, manager="tests-rbac")
    user = f"system:serviceaccount:{operator_ns}:{SERVICE_ACCOUNT}"
    try:
        wait_for(
            lambda: allowed(api_client, "get", "secrets", namespace=namespace, user=user),
            timeout=30,
            message="single-namespace RBAC in effect",
        )
        yield {"user": user, "watched": namespace, "operator_ns": operator_ns}
    finally:
        rbac = client.RbacAuthorizationV1Api(api_client)
        for doc in manifests:
            try:
                if doc["kind"] == "ClusterRole":
                    rbac.delete_cluster_role(doc["metadata"]["name"])
                elif doc["kind"] == "ClusterRoleBinding":
                    rbac.delete_cluster_role_binding(doc["metadata"]["name"])
                elif doc["kind"] == "Namespace":
                    client.CoreV1Api(api_client).delete_namespace(doc["metadata"]["name"])
            except ApiException as exc:
                if exc.status != 404:
                    raise


def test_single_namespace_grants_only_the_watched_namespace(
    api_client: Any, single_namespace: dict[str, str]
) -> None:
    user, watched = single_namespace["user"], single_namespace["watched"]
    elsewhere = "default"

    def can(verb: str, resource: str, ns: str | None, group: str = "") -> bool:
        return allowed(api_client, verb, resource, group=group, namespace=ns, user=user)

    for verb, resource, group in (
        ("get", "secrets", ""),
        ("watch", "secrets", ""),
        ("get", "configmaps", ""),
        ("patch", "deployments", "apps"),
        ("list", "aidboxclusters", "aidbox.io"),
        ("create", "events", ""),
    ):
        assert can(verb, resource, watched, group), (verb, resource, "in the watched namespace")
        assert not can(verb, resource, elsewhere, group), (verb, resource, "in", elsewhere)
        assert not can(verb, resource, None, group), (verb, resource, "cluster-wide")
    assert not can("get", "secrets", "kube-system")
    assert can("list", "customresourcedefinitions", None, "apiextensions.k8s.io")
    assert not can("watch", "namespaces", None), "one named namespace needs no namespace watch"
    assert can("create", "leases", single_namespace["operator_ns"], LEASES)
    assert not can("create", "leases", watched, LEASES)
