"""One real autoscaling step: metrics-server scrapes the real nodes' kubelets, the real
HorizontalPodAutoscaler controller (kube-controller-manager) reads the stand-in pods' memory
through the aggregation layer and scales the cluster's Deployment up, and the operator follows
its choice (status, PodDisruptionBudget) without taking the replicas back."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client
from metricsserver import MetricsServer
from standin import settled, standin_spec

import tools
from aidbox_operator.model.constants import FIELD_MANAGER
from aidbox_sandbox.realnode import RealNodes
from helpers import wait_for
from kube_helpers import create_cluster, events_for, get_cluster, make_config, patch_spec

pytestmark = pytest.mark.usefixtures("operator")

NAME = "box"
MIN, MAX = 2, 3
# Percent of the 32Mi memory request (0.6Mi): an idle stand-in uses more, so the HPA wants more
# pods than it may have and scales to MAX in one step.
TARGET = 2


def _aggregation_layer_on(api: client.ApiClient) -> bool:
    found = client.CoreV1Api(api).read_namespaced_config_map(
        "extension-apiserver-authentication", "kube-system"
    )
    return "requestheader-client-ca-file" in (found.data or {})


@pytest.fixture(scope="module")
def metrics_server(
    sandbox: Any, real_nodes: RealNodes, api_client: client.ApiClient, tmp_path_factory: Any
) -> Iterator[MetricsServer]:
    if not _aggregation_layer_on(api_client):
        pytest.fail(
            "the running sandbox's API server has no aggregation layer (started by an older "
            "aidbox_sandbox): stop it and run again",
            pytrace=False,
        )
    binary = tools.metrics_server()
    server = MetricsServer(binary, sandbox, tmp_path_factory.mktemp("metrics-server"))
    server.start(api_client)
    try:
        wait_for(
            lambda: server.exited() or server.available(api_client),
            timeout=90,
            message=f"the APIService available ({server.log_path})",
        )
        server.check_alive()
        yield server
    finally:
        server.stop(api_client)
        print(f"\nmetrics-server log: {server.log_path}")


def _pod_metrics(api: client.ApiClient, ns: str) -> list[dict[str, Any]]:
    listed = client.CustomObjectsApi(api).list_namespaced_custom_object(
        "metrics.k8s.io", "v1beta1", ns, "pods", label_selector=f"app.kubernetes.io/instance={NAME}"
    )
    return list(listed["items"])


def _replicas(api: client.ApiClient, ns: str) -> int:
    return int(client.AppsV1Api(api).read_namespaced_deployment(NAME, ns).spec.replicas)


def _operator_owns_replicas(api: client.ApiClient, ns: str) -> bool:
    deployment = client.AppsV1Api(api).read_namespaced_deployment(NAME, ns)
    for entry in deployment.metadata.managed_fields or []:
        if entry.manager == FIELD_MANAGER and entry.operation == "Apply":
            return "f:replicas" in (entry.fields_v1 or {}).get("f:spec", {})
    return False


def _status(api: client.ApiClient, ns: str) -> dict[str, Any]:
    return dict(get_cluster(api, NAME, ns).get("status") or {})


def _utilization(api: client.ApiClient, ns: str) -> int | None:
    """The memory utilization the HPA last measured (percent of the request), once it has."""
    hpa = client.AutoscalingV2Api(api).read_namespaced_horizontal_pod_autoscaler(NAME, ns)
    for metric in hpa.status.current_metrics or []:
        if metric.resource and metric.resource.name == "memory":
            return int(metric.resource.current.average_utilization)
    return None


def _pdb_follows(api: client.ApiClient, ns: str, pods: int) -> bool:
    pdb = client.PolicyV1Api(api).read_namespaced_pod_disruption_budget(NAME, ns)
    return bool(pdb.status.expected_pods == pods and pdb.status.current_healthy == pods)


def _no_fight_on_the_next_pass(api: client.ApiClient, ns: str, autoscaling: dict[str, int]) -> None:
    """A later pass of the operator (it applies the HPA's new target and records the
    generation) leaves the HPA's count alone."""
    generation = get_cluster(api, NAME, ns)["metadata"]["generation"]
    before = client.AppsV1Api(api).read_namespaced_deployment(NAME, ns).metadata.generation
    target = {**autoscaling, "targetMemoryUtilizationPercentage": TARGET + 1}
    patch_spec(api, NAME, ns, {"autoscaling": target})
    wait_for(
        lambda: _status(api, ns).get("observedGeneration", 0) > generation,
        timeout=60,
        message="the operator's pass over the new generation",
    )
    hpa = client.AutoscalingV2Api(api).read_namespaced_horizontal_pod_autoscaler(NAME, ns)
    assert hpa.spec.metrics[0].resource.target.average_utilization == TARGET + 1
    assert _replicas(api, ns) == MAX and not _operator_owns_replicas(api, ns)
    after = client.AppsV1Api(api).read_namespaced_deployment(NAME, ns)
    assert after.metadata.generation == before
    assert _status(api, ns)["ready"] == f"{MAX}/{MAX}"
    reasons = [e.reason for e in events_for(api, NAME, ns)]
    assert "DriftRepaired" not in reasons, reasons


def test_hpa_scales_on_real_metrics_and_operator_follows(
    metrics_server: MetricsServer, api_client: client.ApiClient, namespace: str
) -> None:
    api, ns = api_client, namespace
    make_config(api, NAME, ns, data={"BOX_ID": NAME})
    autoscaling = {
        "minReplicas": MIN,
        "maxReplicas": MAX,
        "targetMemoryUtilizationPercentage": TARGET,
    }
    create_cluster(api, NAME, ns, **standin_spec(MIN, autoscaling=autoscaling))
    started = time.monotonic()
    wait_for(lambda: settled(api, NAME, ns, MIN), timeout=180, message=f"{MIN} ready pods")
    ready_after = time.monotonic() - started

    samples = wait_for(
        lambda: len(found := _pod_metrics(api, ns)) >= MIN and found,
        timeout=120,
        interval=1,
        message="PodMetrics of the stand-in pods",
    )
    metrics_after = time.monotonic() - started
    memory = [s["containers"][0]["usage"]["memory"] for s in samples]
    print(f"\nPodMetrics after {metrics_after:.0f}s: memory {memory}")

    wait_for(lambda: _replicas(api, ns) == MAX, timeout=120, interval=1, message=f"HPA to {MAX}")
    step_after = time.monotonic() - started
    current = wait_for(lambda: _utilization(api, ns), timeout=60, message="the HPA's status")
    assert current > TARGET

    wait_for(lambda: settled(api, NAME, ns, MAX), timeout=180, message=f"{MAX} ready pods")
    wait_for(lambda: _status(api, ns).get("ready") == f"{MAX}/{MAX}", timeout=60, message="3/3")
    assert _status(api, ns)["replicas"] == MAX
    wait_for(lambda: _pdb_follows(api, ns, MAX), timeout=60, message="the PDB counts 3 pods")
    print(
        f"\npods ready after {ready_after:.0f}s, metrics after {metrics_after:.0f}s "
        f"(memory {memory}), HPA step to {MAX} after {step_after:.0f}s "
        f"(utilization {current}% of the request, target {TARGET}%)"
    )

    _no_fight_on_the_next_pass(api, ns, autoscaling)
    metrics_server.check_alive()
