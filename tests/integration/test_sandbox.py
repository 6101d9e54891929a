"""The sandbox behaves like a real cluster: scheduling, readiness, endpoints, GC, RBAC, CRDs."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from aidbox_sandbox import NOT_READY_LABEL, ZONE_LABEL
from helpers import wait_for

IMAGE = "registry.invalid/sandbox-test:1"  # never pulled: kwok plays the kubelet


def _pod_ready(pod: Any) -> bool:
    conds = {c.type: c.status for c in (pod.status.conditions or [])}
    return pod.status.phase == "Running" and conds.get("Ready") == "True"


def _conditions(pod: Any) -> dict[str, str]:
    return {c.type: c.status for c in (pod.status.conditions or [])}


def _container(name: str = "app") -> client.V1Container:
    return client.V1Container(
        name=name, image=IMAGE, ports=[client.V1ContainerPort(container_port=8080)]
    )


def _deployment(name: str, replicas: int) -> client.V1Deployment:
    labels = {"app": name, "svc": name}
    anti = client.V1PodAntiAffinity(
        required_during_scheduling_ignored_during_execution=[
            client.V1PodAffinityTerm(
                label_selector=client.V1LabelSelector(match_labels={"app": name}),
                topology_key="kubernetes.io/hostname",
            )
        ]
    )
    return client.V1Deployment(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1DeploymentSpec(
            replicas=replicas,
            selector=client.V1LabelSelector(match_labels={"app": name}),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(
                    containers=[_container()],
                    affinity=client.V1Affinity(pod_anti_affinity=anti),
                ),
            ),
        ),
    )


def _service(name: str) -> client.V1Service:
    return client.V1Service(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1ServiceSpec(
            selector={"svc": name},
            ports=[client.V1ServicePort(name="http", port=80, target_port=8080)],
        ),
    )


def _endpoints(api_client: Any, namespace: str, service: str) -> tuple[set[str], set[str]]:
    """(ready addresses, not-ready addresses) over the Service's EndpointSlices."""
    slices = client.DiscoveryV1Api(api_client).list_namespaced_endpoint_slice(
        namespace, label_selector=f"kubernetes.io/service-name={service}"
    )
    ready: set[str] = set()
    not_ready: set[str] = set()
    for sl in slices.items:
        for ep in sl.endpoints or []:
            target = ready if ep.conditions and ep.conditions.ready else not_ready
            target.update(ep.addresses)
    return ready, not_ready


def test_nodes_span_three_zones_with_distinct_hostnames(api_client: Any, sandbox: Any) -> None:
    nodes = client.CoreV1Api(api_client).list_node().items
    ready = [
        n
        for n in nodes
        if any(c.type == "Ready" and c.status == "True" for c in n.status.conditions or [])
    ]
    assert len(ready) >= 3
    if sandbox is not None:
        zones = {n.metadata.labels.get(ZONE_LABEL) for n in ready}
        hostnames = {n.metadata.labels.get("kubernetes.io/hostname") for n in ready}
        assert {"zone-a", "zone-b", "zone-c"} <= zones
        assert len(hostnames) == len(ready)


def test_deployment_pods_spread_ready_and_in_endpoints(api_client: Any, namespace: str) -> None:
    core = client.CoreV1Api(api_client)
    apps = client.AppsV1Api(api_client)
    apps.create_namespaced_deployment(namespace, _deployment("web", 3))
    core.create_namespaced_service(namespace, _service("web"))

    def three_ready() -> list[Any] | None:
        pods = core.list_namespaced_pod(namespace, label_selector="app=web").items
        ready = [p for p in pods if _pod_ready(p)]
        return ready if len(ready) == 3 and len(pods) == 3 else None

    pods = wait_for(three_ready, timeout=60, message="3 Running/Ready pods of Deployment web")
    assert len({p.spec.node_name for p in pods}) == 3, "anti-affinity must spread pods over nodes"
    ips = {p.status.pod_ip for p in pods}
    assert all(ips) and len(ips) == 3

    wait_for(
        lambda: apps.read_namespaced_deployment_status("web", namespace).status.ready_replicas == 3,
        timeout=30,
        message="Deployment web readyReplicas == 3",
    )
    wait_for(
        lambda: _endpoints(api_client, namespace, "web") == (ips, set()),
        timeout=30,
        message=f"EndpointSlices of web listing exactly {ips}",
    )

    # A pod that matches the Service but carries the not-ready label: Running, never Ready.
    core.create_namespaced_pod(
        namespace,
        client.V1Pod(
            metadata=client.V1ObjectMeta(
                name="probe-fails", labels={"svc": "web", NOT_READY_LABEL: "true"}
            ),
            spec=client.V1PodSpec(containers=[_container()]),
        ),
    )
    pod = wait_for(
        lambda: (
            (p := core.read_namespaced_pod("probe-fails", namespace)).status.phase == "Running"
            and p
        ),
        timeout=30,
        message="pod probe-fails Running",
    )
    conds = _conditions(pod)
    assert conds.get("Ready") == "False"
    assert conds.get("ContainersReady") == "False"
    assert pod.status.pod_ip
    assert not any(cs.ready for cs in pod.status.container_statuses or [])

    ready, not_ready = wait_for(
        lambda: (eps := _endpoints(api_client, namespace, "web"))[1] and eps,
        timeout=30,
        message="the not-ready pod listed as a not-ready endpoint",
    )
    assert ready == ips
    assert pod.status.pod_ip in not_ready
    assert pod.status.pod_ip not in ready


def test_not_ready_label_toggles_readiness_of_running_pod(api_client: Any, namespace: str) -> None:
    core = client.CoreV1Api(api_client)
    core.create_namespaced_pod(
        namespace,
        client.V1Pod(
            metadata=client.V1ObjectMeta(name="p", labels={"app": "p"}),
            spec=client.V1PodSpec(containers=[_container()]),
        ),
    )
    wait_for(
        lambda: _pod_ready(core.read_namespaced_pod("p", namespace)),
        timeout=30,
        message="pod p Ready",
    )
    core.patch_namespaced_pod("p", namespace, {"metadata": {"labels": {NOT_READY_LABEL: "true"}}})
    wait_for(
        lambda: _conditions(core.read_namespaced_pod("p", namespace)).get("Ready") == "False",
        timeout=30,
        message="pod p Ready=False after labelling",
    )
    pod = core.read_namespaced_pod("p", namespace)
    assert pod.status.phase == "Running"
    core.patch_namespaced_pod("p", namespace, {"metadata": {"labels": {NOT_READY_LABEL: None}}})
    wait_for(
        lambda: _pod_ready(core.read_namespaced_pod("p", namespace)),
        timeout=30,
        message="pod p Ready again after removing the label",
    )


def test_deleting_owner_garbage_collects_dependents(api_client: Any, namespace: str) -> None:
    core = client.CoreV1Api(api_client)
    apps = client.AppsV1Api(api_client)
    owner = core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="owner"))
    )
    ref = client.V1OwnerReference(
        api_version="v1", kind="ConfigMap", name="owner", uid=owner.metadata.uid
    )
    core.create_namespaced_config_map(
        namespace,
        client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name="dependent", owner_references=[ref]),
            data={"k": "v"},
        ),
    )
    apps.create_namespaced_deployment(namespace, _deployment("gc", 2))
    wait_for(
        lambda: len(core.list_namespaced_pod(namespace, label_selector="app=gc").items) == 2,
        timeout=30,
        message="2 pods of Deployment gc",
    )

    core.delete_namespaced_config_map("owner", namespace, propagation_policy="Background")
    apps.delete_namespaced_deployment("gc", namespace, propagation_policy="Background")

    def gone() -> bool:
        names = {c.metadata.name for c in core.list_namespaced_config_map(namespace).items}
        rs = apps.list_namespaced_replica_set(namespace, label_selector="app=gc").items
        pods = core.list_namespaced_pod(namespace, label_selector="app=gc").items
        return "dependent" not in names and not rs and not pods

    wait_for(gone, timeout=60, message="ConfigMap dependent, ReplicaSet and pods of gc collected")


def test_rbac_denies_service_account_without_role(
    api_client: Any, namespace: str, sandbox: Any, tmp_path: Path
) -> None:
    core = client.CoreV1Api(api_client)
    core.create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="nobody"))
    )
    token = core.create_namespaced_service_account_token(
        "nobody",
        namespace,
        client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=600)
        ),
    ).status.token

    # The admin may list pods...
    core.list_namespaced_pod(namespace)

    # ...the ServiceAccount, with a bearer token and no Role, may not.
    if sandbox is not None:
        from kubernetes import config

        kc = sandbox.write_token_kubeconfig(tmp_path / "sa.kubeconfig", token)
        cfg = client.Configuration()
        config.load_kube_config(config_file=str(kc), client_configuration=cfg)
    else:
        cfg = copy.deepcopy(api_client.configuration)
        cfg.cert_file = cfg.key_file = None
        cfg.api_key = {"authorization": f"Bearer {token}"}
    with client.ApiClient(cfg) as sa_client:
        sa_core = client.CoreV1Api(sa_client)
        with pytest.raises(ApiException) as err:
            sa_core.list_namespaced_pod(namespace)
        assert err.value.status == 403
        body = json.loads(err.value.body)
        assert f"system:serviceaccount:{namespace}:nobody" in body["message"]
        with pytest.raises(ApiException) as err2:
            sa_core.create_namespaced_config_map(
                namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="x"))
            )
        assert err2.value.status == 403


CRD_GROUP = "sandbox-test.aidbox.io"
CRD_NAME = f"widgets.{CRD_GROUP}"


def _crd() -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": CRD_NAME},
        "spec": {
            "group": CRD_GROUP,
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "required": ["replicas"],
                                    "properties": {
                                        "replicas": {"type": "integer", "minimum": 1},
                                        "mode": {"type": "string", "enum": ["fast", "safe"]},
                                    },
                                },
                            },
                        }
                    },
                }
            ],
        },
    }


def test_crd_structural_schema_rejects_invalid_object(api_client: Any, namespace: str) -> None:
    ext = client.ApiextensionsV1Api(api_client)
    custom = client.CustomObjectsApi(api_client)
    try:
        ext.create_custom_resource_definition(_crd())
    except ApiException as exc:
        if exc.status != 409:
            raise

    def established() -> bool:
        crd = ext.read_custom_resource_definition(CRD_NAME)
        return any(
            c.type == "Established" and c.status == "True" for c in crd.status.conditions or []
        )

    wait_for(established, timeout=30, message=f"CRD {CRD_NAME} Established")

    def create(name: str, spec: dict[str, Any]) -> Any:
        body = {
            "apiVersion": f"{CRD_GROUP}/v1",
            "kind": "Widget",
            "metadata": {"name": name},
            "spec": spec,
        }
        return custom.create_namespaced_custom_object(CRD_GROUP, "v1", namespace, "widgets", body)

    # Discovery of a brand-new CRD can lag a moment: retry the valid create until served.
    wait_for(
        lambda: create("good", {"replicas": 2, "mode": "safe"}),
        timeout=30,
        message="creating a valid Widget",
    )

    with pytest.raises(ApiException) as err:
        create("bad", {"replicas": 0, "mode": "reckless"})
    assert err.value.status == 422
    message = json.loads(err.value.body)["message"]
    assert 'Widget.sandbox-test.aidbox.io "bad" is invalid' in message
    assert "spec.replicas" in message
    assert "should be greater than or equal to 1" in message
    assert 'Unsupported value: "reckless"' in message

    with pytest.raises(ApiException) as err:
        create("missing", {"mode": "fast"})
    assert err.value.status == 422
    assert "spec.replicas: Required value" in json.loads(err.value.body)["message"]


def test_sandbox_status_audit_and_idempotent_up(sandbox: Any, sandbox_kubeconfig: Path) -> None:
    if sandbox is None:
        pytest.skip("only meaningful for the local sandbox")  # existing cluster: nothing to check
    status = sandbox.status()
    assert status.running
    assert {p.name for p in status.processes} >= {
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kwok",
    }
    assert all(p.alive for p in status.processes)
    assert status.api_server_url and status.api_server_url.startswith("https://127.0.0.1:")
    assert status.rss_mb > 0
    messages: list[str] = []
    sandbox.up(progress=messages.append)
    assert messages and "already up" in messages[0]

    def admin_seen() -> bool:
        for line in sandbox.audit_log.read_text().splitlines():
            event = json.loads(line)
            if event["user"]["username"] == "sandbox-admin":
                return True
        return False

    wait_for(admin_seen, timeout=10, message="sandbox-admin requests in the audit log")


def test_pdb_blocks_eviction_and_jobs_complete(api_client: Any, namespace: str) -> None:
    core = client.CoreV1Api(api_client)
    apps = client.AppsV1Api(api_client)
    policy = client.PolicyV1Api(api_client)
    batch = client.BatchV1Api(api_client)
    apps.create_namespaced_deployment(namespace, _deployment("db", 3))
    policy.create_namespaced_pod_disruption_budget(
        namespace,
        client.V1PodDisruptionBudget(
            metadata=client.V1ObjectMeta(name="db"),
            spec=client.V1PodDisruptionBudgetSpec(
                max_unavailable=0,
                selector=client.V1LabelSelector(match_labels={"app": "db"}),
            ),
        ),
    )
    wait_for(
        lambda: (
            (
                policy.read_namespaced_pod_disruption_budget_status(
                    "db", namespace
                ).status.current_healthy
            )
            == 3
        ),
        timeout=60,
        message="PDB db sees 3 healthy pods",
    )
    victim = core.list_namespaced_pod(namespace, label_selector="app=db").items[0].metadata.name
    with pytest.raises(ApiException) as err:
        core.create_namespaced_pod_eviction(
            victim,
            namespace,
            client.V1Eviction(metadata=client.V1ObjectMeta(name=victim, namespace=namespace)),
        )
    assert err.value.status == 429
    assert "disruption budget" in (err.value.body or "")

    batch.create_namespaced_job(
        namespace,
        client.V1Job(
            metadata=client.V1ObjectMeta(name="once"),
            spec=client.V1JobSpec(
                backoff_limit=0,
                template=client.V1PodTemplateSpec(
                    spec=client.V1PodSpec(restart_policy="Never", containers=[_container()])
                ),
            ),
        ),
    )
    wait_for(
        lambda: batch.read_namespaced_job_status("once", namespace).status.succeeded == 1,
        timeout=60,
        message="Job once succeeded",
    )
