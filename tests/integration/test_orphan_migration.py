"""`kubectl delete abx X --cascade=orphan`, then X applied again: the documented hand-over.

On the real API server (its garbage collector strips the owner references to the deleted
AidboxCluster from the orphans): the children, the auth-keys Secret among them, are annotated
aidbox.io/adopt=X and the new X owns them all, keeps the JWT keys as they were, reports Ready
within seconds, and restarts no pod."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from helpers import wait_for
from kube_helpers import (
    GROUP,
    PLURAL,
    VERSION,
    condition,
    create_cluster,
    events_for,
    get_cluster,
    make_config,
    wait_condition,
)

pytestmark = pytest.mark.usefixtures("operator")
ADOPT = "aidbox.io/adopt"
NAME = "mig"
KEYS = f"{NAME}-auth-keys"
# Every child the cluster below has, by kind: read and annotated alike.
CHILDREN = ("Deployment", "Service", "PodDisruptionBudget", "Secret")


def _read(api: Any, kind: str, ns: str) -> Any:
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    policy = client.PolicyV1Api(api)
    return {
        "Deployment": lambda: apps.read_namespaced_deployment(NAME, ns),
        "Service": lambda: core.read_namespaced_service(NAME, ns),
        "PodDisruptionBudget": lambda: policy.read_namespaced_pod_disruption_budget(NAME, ns),
        "Secret": lambda: core.read_namespaced_secret(KEYS, ns),
    }[kind]()


def _annotate(api: Any, kind: str, ns: str) -> None:
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    policy = client.PolicyV1Api(api)
    body = {"metadata": {"annotations": {ADOPT: NAME}}}
    {
        "Deployment": lambda: apps.patch_namespaced_deployment(NAME, ns, body),
        "Service": lambda: core.patch_namespaced_service(NAME, ns, body),
        "PodDisruptionBudget": lambda: policy.patch_namespaced_pod_disruption_budget(
            NAME, ns, body
        ),
        "Secret": lambda: core.patch_namespaced_secret(KEYS, ns, body),
    }[kind]()


def _owners(api: Any, ns: str) -> dict[str, set[str]]:
    return {k: {r.uid for r in _read(api, k, ns).metadata.owner_references or []} for k in CHILDREN}


def _pods(api: Any, ns: str) -> dict[str, tuple[str, int]]:
    """uid -> (pod-template-hash, restarts) of the cluster's pods."""
    pods = client.CoreV1Api(api).list_namespaced_pod(
        ns, label_selector=f"app.kubernetes.io/instance={NAME}"
    )
    return {
        p.metadata.uid: (
            p.metadata.labels.get("pod-template-hash", ""),
            sum(c.restart_count for c in p.status.container_statuses or []),
        )
        for p in pods.items
        if not p.metadata.deletion_timestamp
    }


def _gone(api: Any, ns: str) -> bool:
    try:
        get_cluster(api, NAME, ns)
    except ApiException as err:
        return err.status == 404
    return False


@pytest.mark.parametrize(
    "annotated_first", [True, False], ids=["annotate-then-apply", "apply-then-annotate"]
)
def test_orphan_delete_and_reapply_hands_every_child_over(
    api_client: Any, namespace: str, annotated_first: bool
) -> None:
    """Either order: annotated before X is applied again, or after (X then reports the
    conflict until the hand-over, and goes on within seconds of it)."""
    ns = namespace
    make_config(api_client, NAME, ns)
    first = create_cluster(api_client, NAME, ns)
    wait_condition(api_client, NAME, ns, "Ready", timeout=90)
    keys = _read(api_client, "Secret", ns).data
    pods = _pods(api_client, ns)
    assert len(pods) == 2 and keys
    old_uid = first["metadata"]["uid"]
    assert all(owners == {old_uid} for owners in _owners(api_client, ns).values())

    client.CustomObjectsApi(api_client).delete_namespaced_custom_object(
        GROUP, VERSION, ns, PLURAL, NAME, propagation_policy="Orphan"
    )
    wait_for(lambda: _gone(api_client, ns), timeout=30, message="the AidboxCluster deleted")
    wait_for(
        lambda: all(not o for o in _owners(api_client, ns).values()),
        timeout=60,
        message="the garbage collector stripping the owner references from the orphans",
    )
    if annotated_first:
        for kind in CHILDREN:
            _annotate(api_client, kind, ns)
    again = create_cluster(api_client, NAME, ns)
    if not annotated_first:
        body = wait_condition(api_client, NAME, ns, "Stalled", reason="ResourceConflict")
        assert _pods(api_client, ns) == pods
        for kind in CHILDREN:
            _annotate(api_client, kind, ns)
    # Within seconds: nothing the new cluster waits for but its own pass and the Deployment
    # controller's status update after the adoption.
    body = wait_condition(api_client, NAME, ns, "Ready", timeout=20)
    new_uid = again["metadata"]["uid"]
    assert _owners(api_client, ns) == {kind: {new_uid} for kind in CHILDREN}
    assert _read(api_client, "Secret", ns).data == keys, "the JWT keys were replaced"
    assert ADOPT not in (_read(api_client, "Secret", ns).metadata.annotations or {})
    assert _pods(api_client, ns) == pods, "a pod was replaced or restarted"
    assert body["status"]["ready"] == "2/2" and condition(body, "Stalled")["status"] == "False"
    wait_for(
        lambda: (
            f"Secret {KEYS} (its JWT keys kept)"
            in {e.message for e in events_for(api_client, NAME, ns) if e.reason == "Adopted"}
        ),
        timeout=10,
        message="the Adopted Event of the keys Secret",
    )
