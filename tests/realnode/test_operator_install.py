"""The operator's own install, for real: its image built from the Dockerfile (buildah, no Docker
engine; see aidbox_sandbox.operatorimage for the base-image stand-in), loaded into the
real nodes' containerd, and deploy/overlays/single-namespace applied as it is, apart from
scheduling onto the real nodes and unique names (so it cannot touch the session operator's
RBAC). The operator then runs as pods (read-only root filesystem, uid 65532, its
ServiceAccount's token through the kubernetes Service) and reconciles a cluster to Ready."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client
from standin import pods, standin_spec

from helpers import wait_for
from kube_helpers import apply, create_cluster, get_cluster, make_config
from operator_image import load_image, on_real_nodes, set_watched_namespace
from rbac import kustomize

OPERATOR_NS, WATCHED_NS = "aidbox-operator-system", "aidbox"
CLUSTER_ROLES = ("aidbox-operator", "aidbox-operator-cluster")
OPERATOR_PODS = "app.kubernetes.io/name=aidbox-operator"


def _manifests(sandbox: Any, suffix: str, operator_ns: str, watched: str) -> list[dict[str, Any]]:
    """The overlay's objects, renamed where names are cluster-wide or shared with the session."""
    docs = []
    for doc in kustomize(sandbox, "single-namespace"):
        kind, meta = doc["kind"], doc["metadata"]
        if kind == "CustomResourceDefinition":
            continue  # installed by the session (the `crd` fixture), the same file
        if kind.startswith("ValidatingAdmissionPolicy"):
            # Cluster-wide and not deleted afterwards: it would refuse downgrades in other
            # tests on the same API server. tests/integration/test_downgrade_admission.py.
            continue
        if kind == "Namespace":
            meta["name"] = operator_ns
        if meta.get("namespace") == OPERATOR_NS:
            meta["namespace"] = operator_ns
        if meta.get("namespace") == WATCHED_NS:
            meta["namespace"] = watched
        if kind in ("ClusterRole", "ClusterRoleBinding"):
            meta["name"] += suffix
        if doc.get("roleRef", {}).get("kind") == "ClusterRole":
            doc["roleRef"]["name"] += suffix
        for subject in doc.get("subjects", []):
            subject["namespace"] = operator_ns
        if kind == "Deployment":
            set_watched_namespace(on_real_nodes(doc), watched)
        docs.append(doc)
    return docs


@pytest.fixture
def installed(
    api_client: Any, sandbox: Any, real_nodes: Any, crd: None
) -> Iterator[dict[str, str]]:
    load_image(real_nodes)
    suffix = f"-{secrets.token_hex(3)}"
    names = {"operator_ns": f"op{suffix}", "watched": f"watched{suffix}"}
    core, rbac = client.CoreV1Api(api_client), client.RbacAuthorizationV1Api(api_client)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=names["watched"])))
    try:
        for doc in _manifests(sandbox, suffix, names["operator_ns"], names["watched"]):
            apply(api_client, doc)
        yield names
    finally:
        for ns in (names["watched"], names["operator_ns"]):
            core.delete_namespace(ns, propagation_policy="Background")
        for role in CLUSTER_ROLES:
            for delete in (rbac.delete_cluster_role, rbac.delete_cluster_role_binding):
                try:
                    delete(role + suffix)
                except client.ApiException as exc:
                    if exc.status != 404:
                        raise


def _ready(pod: client.V1Pod) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


def test_operator_image_from_dockerfile_runs_as_pods_and_reconciles(
    api_client: Any, installed: dict[str, str]
) -> None:
    core = client.CoreV1Api(api_client)
    op_ns, watched = installed["operator_ns"], installed["watched"]

    def operator_pods() -> list[client.V1Pod] | None:
        found = core.list_namespaced_pod(op_ns, label_selector=OPERATOR_PODS)
        ready = [p for p in found.items if _ready(p)]
        return ready if len(ready) == 2 else None

    running = wait_for(operator_pods, timeout=180, interval=1, message="2 Ready operator pods")
    for pod in running:
        assert pod.spec.node_name in ("real-node-0", "real-node-1")
        ctx = pod.spec.containers[0].security_context
        assert ctx.read_only_root_filesystem is True
        assert ctx.run_as_non_root is True and ctx.run_as_user == 65532
        assert pod.spec.service_account_name == "aidbox-operator"
        mounts = {m.mount_path for m in pod.spec.containers[0].volume_mounts}
        assert "/var/run/secrets/kubernetes.io/serviceaccount" in mounts
    lease = client.CoordinationV1Api(api_client).read_namespaced_lease("aidbox-operator", op_ns)
    assert lease.spec.holder_identity in {p.metadata.name for p in running}

    make_config(api_client, "fhir", watched)
    create_cluster(api_client, "fhir", watched, **standin_spec(replicas=2))
    # Allow for the image's first start on the nodes (kopf no longer scans Namespaces for an
    # exact --namespace).
    status = wait_for(
        lambda: (
            (s := get_cluster(api_client, "fhir", watched).get("status") or {}).get("phase")
            == "Ready"
            and s
        ),
        timeout=240,
        interval=1,
        message="the in-cluster operator making the cluster Ready",
    )
    assert status["readyReplicas"] == 2
    assert status["version"] == "2510.1"
    # In the cluster the operator reads each ready pod's /health (httpx): both replicas report
    # the stand-in's about.version, so there is one key.
    versions = wait_for(
        lambda: (get_cluster(api_client, "fhir", watched).get("status") or {}).get(
            "runningVersions"
        ),
        timeout=30,
        interval=1,
        message="status.runningVersions read from the pods' /health",
    )
    assert versions == {"2510.1": 2}
    boxes = pods(api_client, "fhir", watched)
    assert {p.spec.node_name for p in boxes} <= {"real-node-0", "real-node-1"}
    deployment = client.AppsV1Api(api_client).read_namespaced_deployment("fhir", watched)
    assert deployment.metadata.owner_references[0].kind == "AidboxCluster"
    managers = {f.manager for f in deployment.metadata.managed_fields}
    assert "aidbox-operator" in managers
