"""Day-2 operations: pausing reconciliation, and replicas left to another controller."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client

from helpers import wait_for
from kube_helpers import (
    GROUP,
    PLURAL,
    VERSION,
    condition,
    create_cluster,
    get_cluster,
    make_config,
    patch_spec,
    wait_condition,
    wait_event,
)

pytestmark = pytest.mark.usefixtures("operator")


def _annotate(api: Any, name: str, ns: str, value: str | None) -> None:
    client.CustomObjectsApi(api).patch_namespaced_custom_object(
        GROUP, VERSION, ns, PLURAL, name, {"metadata": {"annotations": {"aidbox.io/paused": value}}}
    )


def test_pause_holds_changes_but_keeps_reporting(api_client: Any, namespace: str) -> None:
    apps, core = client.AppsV1Api(api_client), client.CoreV1Api(api_client)
    make_config(api_client, "p", namespace)
    create_cluster(api_client, "p", namespace, image="healthsamurai/aidboxone:2509")
    wait_condition(api_client, "p", namespace, "Ready")
    _annotate(api_client, "p", namespace, "true")
    wait_condition(api_client, "p", namespace, "Progressing", status="False", reason="Paused")
    wait_event(api_client, "p", namespace, "Paused", "Normal")

    # A deleted child is a change to hold too. Proof that the operator saw the deletion: paused
    # with nothing pending it stays Ready; the missing Service makes it report Ready=False.
    core.delete_namespaced_service("p", namespace)
    wait_condition(api_client, "p", namespace, "Ready", status="False", reason="Paused")
    assert not [s for s in core.list_namespaced_service(namespace).items if s.metadata.name == "p"]
    # Proof that it saw the spec change: conditions written for the new generation.
    patch_spec(api_client, "p", namespace, {"image": "healthsamurai/aidboxone:2510"})
    body = wait_condition(api_client, "p", namespace, "Reconciling", reason="Paused")
    image = apps.read_namespaced_deployment("p", namespace).spec.template.spec.containers[0].image
    assert image == "healthsamurai/aidboxone:2509"
    assert not [s for s in core.list_namespaced_service(namespace).items if s.metadata.name == "p"]
    # A held change is not done: not Ready for this generation, Reconciling, and
    # observedGeneration stays behind, while the pod counts keep following the pods.
    assert condition(body, "Ready")["status"] == "False"
    assert body["status"]["observedGeneration"] < body["metadata"]["generation"]
    assert body["status"]["phase"] == "Paused"
    # Housekeeping goes on: status follows the pods (kill one, watch readiness come back).
    victim = core.list_namespaced_pod(namespace).items[0].metadata.name
    core.delete_namespaced_pod(victim, namespace, grace_period_seconds=0)
    wait_for(
        lambda: get_cluster(api_client, "p", namespace)["status"]["readyReplicas"] == 2,
        timeout=20,
        message="status following the replaced pod while paused",
    )

    _annotate(api_client, "p", namespace, None)
    wait_for(
        lambda: core.read_namespaced_service("p", namespace),
        timeout=10,
        message="Service back after resume",
    )
    wait_for(
        lambda: (
            get_cluster(api_client, "p", namespace)["status"]["image"]
            == "healthsamurai/aidboxone:2510"
        ),
        timeout=30,
        message="held change applied",
    )
    wait_event(api_client, "p", namespace, "Resumed", "Normal")


def test_replicas_left_to_another_controller(api_client: Any, namespace: str) -> None:
    apps = client.AppsV1Api(api_client)
    make_config(api_client, "h", namespace)
    create_cluster(api_client, "h", namespace, replicas=2, manageReplicas=False)
    wait_for(
        lambda: apps.read_namespaced_deployment("h", namespace).status.ready_replicas,
        timeout=30,
        message="deployment running",
    )
    # What a HorizontalPodAutoscaler targeting the Deployment does.
    apps.patch_namespaced_deployment_scale(
        "h", namespace, {"spec": {"replicas": 4}}, field_manager="horizontal-pod-autoscaler"
    )
    wait_for(
        lambda: get_cluster(api_client, "h", namespace)["status"]["ready"] == "4/4",
        timeout=30,
        message="status follows the Deployment's replicas",
    )
    patch_spec(api_client, "h", namespace, {"image": "healthsamurai/aidboxone:edge"})
    wait_for(
        lambda: (
            apps.read_namespaced_deployment("h", namespace).spec.template.spec.containers[0].image
            == "healthsamurai/aidboxone:edge"
        ),
        timeout=10,
        message="spec change applied",
    )
    assert apps.read_namespaced_deployment("h", namespace).spec.replicas == 4
