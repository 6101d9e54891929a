"""spec.autoscaling and replicas left to another controller, on the real API server: the owned
HorizontalPodAutoscaler, the PodDisruptionBudget following the Deployment's replicas, the
replicas handed over without a reset, and `kubectl scale` refused where it would do nothing.

The sandbox runs kube-controller-manager (so the HPA controller) but no metrics server: the
HPA keeps the count within its bounds and never scales on load. Changes of the Deployment's
replicas through its scale subresource stand in for the HPA's choices."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from aidbox_operator.model.constants import FIELD_MANAGER
from aidbox_operator.render.autoscaling import REPLICAS_LEFT_TO_ANNOTATION
from helpers import wait_for
from kube_helpers import (
    GROUP,
    PLURAL,
    VERSION,
    create_cluster,
    events_for,
    get_cluster,
    make_config,
    patch_spec,
    wait_condition,
)

pytestmark = pytest.mark.usefixtures("operator")
HPA_MANAGER = "horizontal-pod-autoscaler"  # what the HPA controller would be


def _read(reader: Any, name: str, ns: str) -> Any:
    try:
        return reader(name, ns)
    except ApiException as err:
        if err.status == 404:
            return None
        raise


def _hpa(api: Any, name: str, ns: str) -> client.V2HorizontalPodAutoscaler | None:
    reader = client.AutoscalingV2Api(api).read_namespaced_horizontal_pod_autoscaler
    return _read(reader, name, ns)


def _pdb(api: Any, name: str, ns: str) -> client.V1PodDisruptionBudget | None:
    return _read(client.PolicyV1Api(api).read_namespaced_pod_disruption_budget, name, ns)


def _deployment(api: Any, name: str, ns: str) -> client.V1Deployment:
    return client.AppsV1Api(api).read_namespaced_deployment(name, ns)


def _handed_over(api: Any, name: str, ns: str) -> client.V1Deployment | None:
    """The Deployment once the operator has let go of its replicas."""
    deployment = _deployment(api, name, ns)
    annotations = deployment.metadata.annotations or {}
    return deployment if REPLICAS_LEFT_TO_ANNOTATION in annotations else None


def _operator_owns_replicas(deployment: client.V1Deployment) -> bool:
    for entry in deployment.metadata.managed_fields or []:
        if entry.manager == FIELD_MANAGER and entry.operation == "Apply":
            return "f:replicas" in (entry.fields_v1 or {}).get("f:spec", {})
    return False


def _pods(api: Any, name: str, ns: str) -> set[str]:
    """The uids of the cluster's pods that are not going away."""
    listed = client.CoreV1Api(api).list_namespaced_pod(
        ns, label_selector=f"app.kubernetes.io/instance={name}"
    )
    return {p.metadata.uid for p in listed.items if p.metadata.deletion_timestamp is None}


def _scale_deployment(api: Any, name: str, ns: str, replicas: int) -> None:
    client.AppsV1Api(api).patch_namespaced_deployment_scale(
        name, ns, {"spec": {"replicas": replicas}}, field_manager=HPA_MANAGER
    )


def _scale_cluster(api: Any, name: str, ns: str, replicas: int) -> ApiException:
    """`kubectl scale abx`: the AidboxCluster's scale subresource; the refusal it gets."""
    with pytest.raises(ApiException) as raised:
        client.CustomObjectsApi(api).patch_namespaced_custom_object_scale(
            GROUP, VERSION, ns, PLURAL, name, {"spec": {"replicas": replicas}}
        )
    return raised.value


def _ready(api: Any, name: str, ns: str, text: str) -> None:
    wait_for(
        lambda: get_cluster(api, name, ns).get("status", {}).get("ready") == text,
        timeout=60,
        message=f"{name} status.ready {text}",
    )


def test_autoscaler_owned_followed_and_pruned(api_client: Any, namespace: str) -> None:
    make_config(api_client, "as", namespace)
    # A behavior the API server completes with its defaults (selectPolicy, scaleUp): that is
    # no drift to repair.
    behavior = {"scaleDown": {"policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]}}
    autoscaling = {
        "minReplicas": 1,
        "maxReplicas": 4,
        "targetCPUUtilizationPercentage": 60,
        "behavior": behavior,
    }
    created = create_cluster(api_client, "as", namespace, replicas=2, autoscaling=autoscaling)
    hpa = wait_for(lambda: _hpa(api_client, "as", namespace), timeout=30, message="the HPA")
    assert hpa.metadata.owner_references[0].uid == created["metadata"]["uid"]
    assert hpa.spec.scale_target_ref.kind == "Deployment"
    assert hpa.spec.scale_target_ref.name == "as"
    assert (hpa.spec.min_replicas, hpa.spec.max_replicas) == (1, 4)
    assert hpa.spec.metrics[0].resource.target.average_utilization == 60
    deployment = wait_for(
        lambda: _handed_over(api_client, "as", namespace), timeout=30, message="replicas let go"
    )
    assert deployment.spec.replicas == 2 and not _operator_owns_replicas(deployment)
    wait_condition(api_client, "as", namespace, "Ready")
    assert _pdb(api_client, "as", namespace) is not None

    # The HPA's choices (scale subresource): the PDB follows, nothing scales back.
    _scale_deployment(api_client, "as", namespace, 1)
    wait_for(lambda: _pdb(api_client, "as", namespace) is None, timeout=30, message="PDB gone at 1")
    _ready(api_client, "as", namespace, "1/1")
    _scale_deployment(api_client, "as", namespace, 3)
    wait_for(lambda: _pdb(api_client, "as", namespace), timeout=30, message="PDB back at 3")
    _ready(api_client, "as", namespace, "3/3")
    assert _deployment(api_client, "as", namespace).spec.replicas == 3

    refused = _scale_cluster(api_client, "as", namespace, 4)
    assert refused.status == 422, refused.body
    assert "spec.replicas cannot change while spec.autoscaling is set" in refused.body
    assert get_cluster(api_client, "as", namespace)["spec"]["replicas"] == 2
    hpa = _hpa(api_client, "as", namespace)
    assert hpa is not None and hpa.spec.behavior.scale_up is not None  # defaulted by the API
    reasons = [e.reason for e in events_for(api_client, "as", namespace)]
    assert "DriftRepaired" not in reasons, reasons

    patch_spec(api_client, "as", namespace, {"autoscaling": None})
    wait_for(
        lambda: _hpa(api_client, "as", namespace) is None, timeout=30, message="the HPA pruned"
    )
    # spec.replicas counts again, and the operator owns them again.
    wait_for(
        lambda: _deployment(api_client, "as", namespace).spec.replicas == 2,
        timeout=30,
        message="replicas taken back",
    )
    assert _operator_owns_replicas(_deployment(api_client, "as", namespace))


def test_replicas_handed_over_without_a_reset(api_client: Any, namespace: str) -> None:
    """Server-side apply removes a field its only owner stops applying: letting go of the
    replicas without the hand-over would drop the Deployment to 1 pod (the HPA, bounded at
    1 here, would keep it there)."""
    make_config(api_client, "ho", namespace)
    create_cluster(api_client, "ho", namespace, replicas=3)
    wait_condition(api_client, "ho", namespace, "Ready")
    pods = _pods(api_client, "ho", namespace)
    assert len(pods) == 3
    patch_spec(api_client, "ho", namespace, {"autoscaling": {"minReplicas": 1, "maxReplicas": 5}})
    deployment = wait_for(
        lambda: _handed_over(api_client, "ho", namespace), timeout=30, message="replicas let go"
    )
    assert deployment.spec.replicas == 3
    assert not _operator_owns_replicas(deployment)
    wait_condition(api_client, "ho", namespace, "Ready")
    assert _deployment(api_client, "ho", namespace).spec.replicas == 3
    assert _pods(api_client, "ho", namespace) == pods  # none stopped on the way


def test_manage_replicas_false_starts_at_spec_replicas(api_client: Any, namespace: str) -> None:
    """Found by a hostile-input run: such a cluster ran 1 pod instead of spec.replicas 2, its
    PDB made and deleted in the same second; and `kubectl scale abx` was accepted and never
    applied."""
    make_config(api_client, "mr", namespace)
    create_cluster(api_client, "mr", namespace, replicas=2, manageReplicas=False)
    deployment = wait_for(
        lambda: _handed_over(api_client, "mr", namespace), timeout=30, message="replicas let go"
    )
    assert deployment.spec.replicas == 2
    wait_condition(api_client, "mr", namespace, "Ready")
    assert _deployment(api_client, "mr", namespace).spec.replicas == 2
    assert _pdb(api_client, "mr", namespace) is not None
    reasons = [e.reason for e in events_for(api_client, "mr", namespace)]
    assert "Deleted" not in reasons, reasons

    refused = _scale_cluster(api_client, "mr", namespace, 5)
    assert refused.status == 422, refused.body
    assert "spec.replicas cannot change while manageReplicas is false" in refused.body
    assert get_cluster(api_client, "mr", namespace)["spec"]["replicas"] == 2
    # The same value is no change: allowed (kubectl scale --replicas=2 is a no-op).
    client.CustomObjectsApi(api_client).patch_namespaced_custom_object_scale(
        GROUP, VERSION, namespace, PLURAL, "mr", {"spec": {"replicas": 2}}
    )
    # Handing the replicas back is a change of its own; spec.replicas may change with it.
    patch_spec(api_client, "mr", namespace, {"manageReplicas": True, "replicas": 3})
    wait_for(
        lambda: _deployment(api_client, "mr", namespace).spec.replicas == 3,
        timeout=30,
        message="replicas managed again",
    )


def test_the_real_hpa_is_not_fought(api_client: Any, namespace: str) -> None:
    """The sandbox's HPA controller cannot measure load, but it keeps the count within its
    bounds: raising minReplicas makes it scale the Deployment, and a later apply of the
    operator's (a pod template change) leaves its choice alone."""
    make_config(api_client, "rh", namespace)
    autoscaling = {"minReplicas": 1, "maxReplicas": 4}
    create_cluster(api_client, "rh", namespace, replicas=2, autoscaling=autoscaling)
    wait_for(lambda: _handed_over(api_client, "rh", namespace), timeout=30, message="let go")
    wait_condition(api_client, "rh", namespace, "Ready")
    patch_spec(api_client, "rh", namespace, {"autoscaling": {**autoscaling, "minReplicas": 3}})
    wait_for(
        lambda: _deployment(api_client, "rh", namespace).spec.replicas == 3,
        timeout=90,
        message="the HPA controller raising the Deployment to minReplicas",
    )
    _ready(api_client, "rh", namespace, "3/3")
    patch_spec(api_client, "rh", namespace, {"podAnnotations": {"team": "fhir"}})
    wait_for(
        lambda: (
            (_deployment(api_client, "rh", namespace).spec.template.metadata.annotations or {}).get(
                "team"
            )
            == "fhir"
        ),
        timeout=30,
        message="the pod template change applied",
    )
    wait_condition(api_client, "rh", namespace, "Ready")
    assert _deployment(api_client, "rh", namespace).spec.replicas == 3
    assert _pdb(api_client, "rh", namespace) is not None
