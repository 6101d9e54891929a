"""The core promises on a real API server: the operator keeps Deployment + Service, status, scale,
drift repair, garbage collection, admission errors, missing config, the version rule, and
makes no writes when nothing changed."""

from __future__ import annotations

import json
import time
from pathlib import Path
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
    operator_wrote_status,
    patch_spec,
    ready_endpoints,
    wait_condition,
    wait_event,
)
from operator_process import WRITE_VERBS, OperatorProcess, reconciles, wait_counted, wait_quiet

pytestmark = pytest.mark.usefixtures("operator")


def _deployment(api: Any, name: str, ns: str) -> client.V1Deployment:
    return client.AppsV1Api(api).read_namespaced_deployment(name, ns)


def test_create_gives_seed_deployment_service_and_ready_status(
    api_client: Any, namespace: str
) -> None:
    make_config(api_client, "aidbox", namespace)
    create_cluster(api_client, "aidbox", namespace)
    body = wait_condition(api_client, "aidbox", namespace, "Ready", timeout=60)
    status = body["status"]
    assert status["ready"] == "2/2" and status["phase"] == "Ready"
    assert status["readyReplicas"] == 2 and status["replicas"] == 2
    assert status["selector"] == "app.kubernetes.io/name=aidbox,app.kubernetes.io/instance=aidbox"
    assert status["version"] == "latest" and status["image"] == "healthsamurai/aidboxone:latest"
    assert {c["type"] for c in status["conditions"]} == {
        "Ready",
        "Progressing",
        "Degraded",
        "Reconciling",
        "Stalled",
    }

    dep = _deployment(api_client, "aidbox", namespace)
    assert dep.spec.replicas == 2
    owner = dep.metadata.owner_references[0]
    assert (owner.kind, owner.name, owner.controller) == ("AidboxCluster", "aidbox", True)
    container = dep.spec.template.spec.containers[0]
    assert container.name == "main" and container.image_pull_policy == "Always"
    assert [(p.container_port, p.protocol) for p in container.ports] == [(8080, "TCP")]
    assert container.env_from[0].config_map_ref.name == "aidbox"
    assert container.env_from[1].secret_ref.name == "aidbox"
    for probe, failures in ((container.liveness_probe, 4), (container.readiness_probe, 2)):
        assert (probe.http_get.path, probe.http_get.port, probe.http_get.scheme) == (
            "/health",
            8080,
            "HTTP",
        )
        assert (
            probe.initial_delay_seconds,
            probe.timeout_seconds,
            probe.period_seconds,
            probe.success_threshold,
            probe.failure_threshold,
        ) == (20, 5, 5, 1, failures)
    managers = {m.manager for m in dep.metadata.managed_fields if m.operation == "Apply"}
    assert managers == {"aidbox-operator"}

    svc = client.CoreV1Api(api_client).read_namespaced_service("aidbox", namespace)
    assert svc.spec.type == "ClusterIP"
    assert svc.metadata.owner_references[0].name == "aidbox"
    pods = (
        client.CoreV1Api(api_client)
        .list_namespaced_pod(namespace, label_selector=status["selector"])
        .items
    )
    assert len(pods) == 2
    wait_for(
        lambda: ready_endpoints(api_client, "aidbox", namespace) == {p.metadata.name for p in pods},
        timeout=30,
        message="endpoints = ready pods",
    )
    wait_event(api_client, "aidbox", namespace, "ClusterReady", "Normal")
    reasons = [e.reason for e in events_for(api_client, "aidbox", namespace)]
    assert reasons.count("Created") >= 3  # keys Secret, Deployment, Service (and PDB)


def test_new_namespace_matching_the_glob_is_served_within_5_s(
    api_client: Any, namespace: str
) -> None:
    """The session operator watches `t-*`; this test's namespace was created after it started.
    Its first AidboxCluster is served as soon as it arrives (one cluster-wide watch per kind,
    filtered by the operator), not after a namespace discovery cycle (kopf's took ~60 s)."""
    make_config(api_client, "aidbox", namespace)
    started = time.monotonic()
    create_cluster(api_client, "aidbox", namespace)
    wait_for(
        lambda: operator_wrote_status(get_cluster(api_client, "aidbox", namespace)),
        timeout=60,
        interval=0.1,
        message="a status for the cluster in a new namespace",
    )
    elapsed = time.monotonic() - started
    assert elapsed <= 5.0, f"a new t-* namespace was served after {elapsed:.1f} s"


def test_scale_subresource(api_client: Any, namespace: str) -> None:
    make_config(api_client, "s", namespace)
    create_cluster(api_client, "s", namespace, replicas=1)
    wait_condition(api_client, "s", namespace, "Ready")
    # What `kubectl scale abx s --replicas=3` and an HPA do.
    client.CustomObjectsApi(api_client).patch_namespaced_custom_object_scale(
        GROUP, VERSION, namespace, PLURAL, "s", {"spec": {"replicas": 3}}
    )

    def three_ready() -> dict[str, Any] | None:
        got = get_cluster(api_client, "s", namespace)
        ready = condition(got, "Ready").get("status") == "True"
        return got if ready and got["status"]["ready"] == "3/3" else None

    body = wait_for(three_ready, timeout=60, message="3/3 ready")
    assert body["status"]["replicas"] == 3
    scale = client.CustomObjectsApi(api_client).get_namespaced_custom_object_scale(
        GROUP, VERSION, namespace, PLURAL, "s"
    )
    assert scale["status"]["replicas"] == 3
    assert (
        scale["status"]["selector"] == "app.kubernetes.io/name=aidbox,app.kubernetes.io/instance=s"
    )
    assert _deployment(api_client, "s", namespace).spec.replicas == 3


def test_drift_repair_of_deployment_and_service(api_client: Any, namespace: str) -> None:
    make_config(api_client, "d", namespace)
    create_cluster(api_client, "d", namespace)
    wait_condition(api_client, "d", namespace, "Ready")
    apps, core = client.AppsV1Api(api_client), client.CoreV1Api(api_client)

    # Someone edits a managed field with another field manager.
    apps.patch_namespaced_deployment(
        "d",
        namespace,
        {
            "spec": {
                "template": {
                    "spec": {
                        "containers": [{"name": "main", "image": "healthsamurai/aidboxone:edge"}]
                    }
                }
            }
        },
        field_manager="kubectl-edit",
    )
    started = time.monotonic()
    wait_for(
        lambda: (
            _deployment(api_client, "d", namespace).spec.template.spec.containers[0].image
            == "healthsamurai/aidboxone:latest"
        ),
        timeout=10,
        interval=0.05,
        message="image restored",
    )
    deployment_repair = time.monotonic() - started
    core.delete_namespaced_service("d", namespace)
    started = time.monotonic()
    wait_for(
        lambda: core.read_namespaced_service("d", namespace),
        timeout=10,
        interval=0.05,
        message="Service recreated",
    )
    service_repair = time.monotonic() - started
    print(f"\ndrift repair: deployment {deployment_repair:.2f}s, service {service_repair:.2f}s")
    assert deployment_repair < 2 and service_repair < 2
    wait_event(api_client, "d", namespace, "DriftRepaired", "Normal")
    wait_event(api_client, "d", namespace, "Recreated", "Normal")


def test_delete_garbage_collects_children(api_client: Any, namespace: str) -> None:
    make_config(api_client, "g", namespace)
    create_cluster(api_client, "g", namespace)
    wait_condition(api_client, "g", namespace, "Ready")
    client.CustomObjectsApi(api_client).delete_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "g"
    )
    apps, core = client.AppsV1Api(api_client), client.CoreV1Api(api_client)

    def gone() -> bool:
        return not apps.list_namespaced_deployment(namespace).items and not [
            s for s in core.list_namespaced_service(namespace).items if s.metadata.name == "g"
        ]

    # The garbage collector learns new CRD kinds on its 30 s discovery refresh.
    wait_for(gone, timeout=90, message="Deployment and Service garbage-collected")


@pytest.mark.parametrize(
    ("name", "spec", "message"),
    [
        ("neg", {"replicas": -1}, "spec.replicas: Invalid value: -1"),
        ("port", {"port": 70000}, "spec.port: Invalid value: 70000"),
        ("img", {"image": ""}, "spec.image: Invalid value"),
        (
            "pol",
            {"imagePullPolicy": "Sometimes"},
            'spec.imagePullPolicy: Unsupported value: "Sometimes"',
        ),
        ("lbl", {"podLabels": {"app.kubernetes.io/instance": "x"}}, "podLabels must not set"),
        ("a" * 46, {}, "metadata.name must be at most 45 characters"),
    ],
)
def test_invalid_resources_rejected_at_admission(
    api_client: Any, namespace: str, name: str, spec: dict[str, Any], message: str
) -> None:
    with pytest.raises(ApiException) as raised:
        create_cluster(api_client, name, namespace, **spec)
    assert raised.value.status == 422
    text = json.loads(raised.value.body)["message"]
    assert message in text, text


def test_missing_configmap_reported_then_proceeds(api_client: Any, namespace: str) -> None:
    core = client.CoreV1Api(api_client)
    core.create_namespaced_secret(
        namespace, client.V1Secret(metadata=client.V1ObjectMeta(name="m"))
    )
    create_cluster(api_client, "m", namespace)
    body = wait_condition(api_client, "m", namespace, "Degraded", reason="MissingReference")
    assert body["status"]["missingReferences"] == ["ConfigMap/m"]
    assert "ConfigMap/m not found" in condition(body, "Degraded")["message"]
    assert body["status"]["phase"] == "Degraded"
    assert not client.AppsV1Api(api_client).list_namespaced_deployment(namespace).items
    wait_event(api_client, "m", namespace, "MissingReference", "Warning")
    warnings = [e for e in events_for(api_client, "m", namespace) if e.type == "Warning"]
    assert [e.reason for e in warnings] == ["MissingReference"]

    core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="m"), data={"BOX_ID": "m"})
    )
    body = wait_condition(api_client, "m", namespace, "Ready")
    assert body["status"]["missingReferences"] == []


def test_version_rule(api_client: Any, namespace: str) -> None:
    make_config(api_client, "old", namespace)
    create_cluster(api_client, "old", namespace, image="healthsamurai/aidboxone:2207", replicas=2)
    body = wait_condition(api_client, "old", namespace, "Degraded", reason="UnsupportedVersion")
    assert body["status"]["phase"] == "Invalid"
    assert "needs 2208 or newer" in condition(body, "Degraded")["message"]
    assert not client.AppsV1Api(api_client).list_namespaced_deployment(namespace).items
    # A single replica of an old release is fine.
    patch_spec(api_client, "old", namespace, {"replicas": 1})
    wait_condition(api_client, "old", namespace, "Ready")

    # A running HA cluster asked to go back to an old release keeps running as it was.
    make_config(api_client, "ha", namespace)
    create_cluster(api_client, "ha", namespace, image="healthsamurai/multibox:2409.1", replicas=2)
    wait_condition(api_client, "ha", namespace, "Ready")
    patch_spec(api_client, "ha", namespace, {"image": "healthsamurai/multibox:2112"})
    wait_condition(api_client, "ha", namespace, "Degraded", reason="UnsupportedVersion")
    dep = _deployment(api_client, "ha", namespace)
    assert dep.spec.template.spec.containers[0].image == "healthsamurai/multibox:2409.1"
    wait_event(api_client, "ha", namespace, "UnsupportedVersion", "Warning")
    # Channel tags carry no version and are accepted.
    patch_spec(api_client, "ha", namespace, {"image": "healthsamurai/multibox:edge"})
    body = wait_condition(api_client, "ha", namespace, "Ready")
    assert body["status"]["version"] == "edge"


def test_no_writes_at_steady_state(
    api_client: Any, own_namespace: str, operator_credentials: Path, tmp_path: Path
) -> None:
    namespace = own_namespace
    sandbox_kubeconfig = operator_credentials
    # An operator of its own, watching only this namespace, so its counts are this test's.
    op = OperatorProcess(sandbox_kubeconfig, tmp_path / "operator.log", ("--namespace", namespace))
    op.start()
    try:
        make_config(api_client, "quiet", namespace)
        create_cluster(api_client, "quiet", namespace, replicas=3)
        wait_condition(api_client, "quiet", namespace, "Ready")
        wait_quiet(op, seconds=2)
        before = op.requests_by_verb()
        events_before = len(events_for(api_client, "quiet", namespace))
        # Unrelated edits wake the operator up; it must find nothing to do. Each one is proven
        # seen (a reconcile pass of this operator, which watches nothing else) before the count.
        passes = reconciles()
        seen = passes(op.metrics())
        client.CustomObjectsApi(api_client).patch_namespaced_custom_object(
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            "quiet",
            {"metadata": {"annotations": {"example.com/touched": "1"}}},
        )
        seen = wait_counted(op, passes, seen, "an annotation on the AidboxCluster")
        client.AppsV1Api(api_client).patch_namespaced_deployment(
            "quiet",
            namespace,
            {"metadata": {"annotations": {"example.com/other-tool": "x"}}},
            field_manager="other-tool",
        )
        wait_counted(op, passes, seen, "another tool's annotation on the Deployment")
        after = op.requests_by_verb()
        writes = {v: after.get(v, 0) - before.get(v, 0) for v in WRITE_VERBS}
        assert not any(writes.values()), f"writes at steady state: {before} -> {after}"
        assert len(events_for(api_client, "quiet", namespace)) == events_before
        # Another tool's annotation is left alone.
        dep = _deployment(api_client, "quiet", namespace)
        assert dep.metadata.annotations.get("example.com/other-tool") == "x"
        assert get_cluster(api_client, "quiet", namespace)["status"]["phase"] == "Ready"
    finally:
        op.stop()


def _operator_requests(sandbox: Any, namespace: str) -> list[tuple[str, str, str, str]]:
    """(time, verb, resource, name) of the operator's requests in `namespace`, as the API
    server's audit log saw them."""
    found = []
    for path in sorted(sandbox.audit_log.parent.glob("audit*.log")):
        for line in path.read_text().splitlines():
            event = json.loads(line)
            ref = event.get("objectRef") or {}
            operator = (event.get("userAgent") or "").startswith("aidbox-operator")
            complete = event.get("stage") == "ResponseComplete"
            if operator and complete and ref.get("namespace") == namespace:
                when, verb = event["requestReceivedTimestamp"], event["verb"]
                found.append((when, verb, ref.get("resource"), ref.get("name", "")))
    return sorted(found)


def test_a_new_cluster_is_made_without_reading_its_names(
    api_client: Any, sandbox: Any, own_namespace: str, operator_credentials: Path, tmp_path: Path
) -> None:
    """A new cluster's Service, PodDisruptionBudget and keys Secret are made by requests that
    fail when the name is taken, not after a GET of each name (only the Deployment's name is
    read: nothing is made beside a foreign Deployment); what is made is owned as any apply
    owns it (operation Apply only), so later applies can still remove a field."""
    if sandbox is None:
        pytest.skip("reads the local sandbox's audit log")
    namespace = own_namespace
    op = OperatorProcess(
        operator_credentials, tmp_path / "operator.log", ("--namespace", namespace)
    )
    op.start()
    try:
        make_config(api_client, "fresh", namespace)
        create_cluster(api_client, "fresh", namespace, replicas=2)
        wait_condition(api_client, "fresh", namespace, "Ready")
    finally:
        op.stop()

    def made() -> list[tuple[str, str, str, str]]:
        requests = _operator_requests(sandbox, namespace)
        kinds = {resource for _, verb, resource, _ in requests if verb in ("create", "patch")}
        return requests if {"secrets", "deployments", "services"} <= kinds else []

    requests = wait_for(made, timeout=20, message="the operator's writes in the audit log")
    keys_created = min(t for t, verb, res, _ in requests if verb == "create" and res == "secrets")
    early_reads = [
        (res, name)
        for t, verb, res, name in requests
        if verb == "get"
        and (res in ("deployments", "services", "poddisruptionbudgets") or t < keys_created)
        and (res, name) not in (("configmaps", "fresh"), ("secrets", "fresh"))
    ]
    assert early_reads == [("deployments", "fresh")], requests
    apps, core = client.AppsV1Api(api_client), client.CoreV1Api(api_client)
    policy = client.PolicyV1Api(api_client)
    children = {
        "Deployment": apps.read_namespaced_deployment("fresh", namespace),
        "Service": core.read_namespaced_service("fresh", namespace),
        "PodDisruptionBudget": policy.read_namespaced_pod_disruption_budget("fresh", namespace),
    }
    for kind, body in children.items():
        fields = body.metadata.managed_fields
        ours = {m.operation for m in fields if m.manager == "aidbox-operator"}
        assert ours == {"Apply"}, (kind, fields)
