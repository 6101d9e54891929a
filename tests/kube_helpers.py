"""Small synchronous helpers over the official client for tests."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException
from kubernetes.dynamic import DynamicClient

from aidbox_operator.model.constants import FIELD_MANAGER
from helpers import wait_for

GROUP, VERSION, PLURAL = "aidbox.io", "v1alpha1", "aidboxclusters"
REPO = Path(__file__).resolve().parents[1]


def apply(api: client.ApiClient, manifest: dict[str, Any], manager: str = "tests") -> Any:
    dyn = DynamicClient(api)
    resource = dyn.resources.get(api_version=manifest["apiVersion"], kind=manifest["kind"])
    return dyn.server_side_apply(
        resource,
        body=manifest,
        namespace=manifest["metadata"].get("namespace"),
        field_manager=manager,
        force_conflicts=True,
    )


CRD_FILES = ("aidboxcluster.yaml", "aidboxreleasechannel.yaml")


def install_crd(api: client.ApiClient) -> None:
    ext = client.ApiextensionsV1Api(api)
    for file in CRD_FILES:
        crd = yaml.safe_load((REPO / "crds" / file).read_text())
        apply(api, crd)

        def established(name: str = crd["metadata"]["name"]) -> bool:
            got = ext.read_custom_resource_definition(name)
            return any(
                c.type == "Established" and c.status == "True" for c in got.status.conditions or []
            )

        wait_for(established, timeout=30, message=f"CRD {file} Established")
    # Discovery of the new kind can lag the Established condition a little.
    wait_for(lambda: _kind_served(api), timeout=30, message="AidboxCluster kind served")


def _kind_served(api: client.ApiClient) -> bool:
    try:
        client.CustomObjectsApi(api).list_cluster_custom_object(GROUP, VERSION, PLURAL, limit=1)
        return True
    except ApiException:
        return False


def cluster_manifest(name: str, namespace: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "AidboxCluster",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def create_cluster(api: client.ApiClient, name: str, namespace: str, **spec: Any) -> dict[str, Any]:
    result: dict[str, Any] = client.CustomObjectsApi(api).create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, cluster_manifest(name, namespace, **spec)
    )
    return result


def get_cluster(api: client.ApiClient, name: str, namespace: str) -> dict[str, Any]:
    result: dict[str, Any] = client.CustomObjectsApi(api).get_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, name
    )
    return result


def patch_spec(api: client.ApiClient, name: str, namespace: str, spec: dict[str, Any]) -> None:
    client.CustomObjectsApi(api).patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, name, {"spec": spec}
    )


def condition(body: dict[str, Any], type_: str) -> dict[str, Any]:
    for cond in (body.get("status") or {}).get("conditions") or []:
        if cond["type"] == type_:
            return dict(cond)
    return {}


def wait_condition(
    api: client.ApiClient,
    name: str,
    namespace: str,
    type_: str,
    status: str = "True",
    reason: str | None = None,
    timeout: float = 60,
) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        body = get_cluster(api, name, namespace)
        cond = condition(body, type_)
        matches = cond.get("status") == status and reason in (None, cond.get("reason"))
        # Each condition names the generation it describes; status.observedGeneration stays
        # behind while a change is held, by design.
        current = cond.get("observedGeneration") == body["metadata"]["generation"]
        return body if matches and current else None

    return wait_for(
        check, timeout=timeout, message=f"{namespace}/{name} {type_}={status} ({reason})"
    )


def operator_wrote_status(body: dict[str, Any]) -> bool:
    """The operator has written this cluster's status: its field manager holds fields of the
    status subresource. (A set `status.phase` proves nothing: the CRD defaults it to Pending.)"""
    return any(
        m.get("manager") == FIELD_MANAGER and m.get("subresource") == "status"
        for m in body["metadata"].get("managedFields") or []
    )


def status_current(body: dict[str, Any]) -> bool:
    """Whether the operator has written a status for the cluster's current spec: every
    condition names metadata.generation (status.observedGeneration may stay behind on purpose,
    while a change is held). Proof that it saw a spec change, before a test asserts that
    nothing came of the change."""
    conditions = (body.get("status") or {}).get("conditions") or []
    generation = body["metadata"]["generation"]
    return bool(conditions) and all(c.get("observedGeneration") == generation for c in conditions)


def make_config(
    api: client.ApiClient,
    name: str,
    namespace: str,
    data: dict[str, str] | None = None,
    secret: dict[str, str] | None = None,
) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map(
        namespace,
        client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name), data=data or {"BOX_ID": name}),
    )
    core.create_namespaced_secret(
        namespace,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name=name),
            string_data=secret or {"BOX_ADMIN_PASSWORD": "test-only-password"},
        ),
    )


def events_for(api: client.ApiClient, name: str, namespace: str) -> list[client.CoreV1Event]:
    events = client.CoreV1Api(api).list_namespaced_event(
        namespace, field_selector=f"involvedObject.name={name},involvedObject.kind=AidboxCluster"
    )
    return list(events.items)


def ready_endpoints(api: client.ApiClient, service: str, namespace: str) -> set[str]:
    slices = client.DiscoveryV1Api(api).list_namespaced_endpoint_slice(
        namespace, label_selector=f"kubernetes.io/service-name={service}"
    )
    found = set()
    for s in slices.items:
        for ep in s.endpoints or []:
            if ep.conditions and ep.conditions.ready and ep.target_ref:
                found.add(ep.target_ref.name)
    return found


def stopwatch() -> Any:
    start = time.monotonic()
    return lambda: time.monotonic() - start


def wait_event(
    api: client.ApiClient,
    name: str,
    namespace: str,
    reason: str,
    type_: str | None = None,
    timeout: float = 10,
) -> client.CoreV1Event:
    """Events are posted right after the status write that announces them: wait a moment."""

    def find() -> client.CoreV1Event | None:
        for event in events_for(api, name, namespace):
            if event.reason == reason and type_ in (None, event.type):
                return event
        return None

    return wait_for(find, timeout=timeout, message=f"{type_ or ''} event {reason} on {name}")


def stand_in_crd(group: str, kind: str, plural: str) -> dict[str, Any]:
    """The smallest stand-in for another project's CRD: same group, kind, version and scope,
    any content."""
    metadata: dict[str, Any] = {"name": f"{plural}.{group}"}
    if group.endswith(".k8s.io"):
        # Kubernetes' own API groups need an approval reference; the Gateway API's CRDs carry
        # one (a URL of the approving pull request).
        metadata["annotations"] = {"api-approved.kubernetes.io": "https://example.invalid/0"}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": metadata,
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
            },
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                        }
                    },
                }
            ],
        },
    }


# The Prometheus Operator's and the Gateway API's kinds the operator may create.
SERVICE_MONITOR_CRD = stand_in_crd("monitoring.coreos.com", "ServiceMonitor", "servicemonitors")
HTTP_ROUTE_CRD = stand_in_crd("gateway.networking.k8s.io", "HTTPRoute", "httproutes")


def namespace_lifetime(api: client.ApiClient, name: str) -> Iterator[str]:
    """Create a namespace, wait until pods can be made in it, delete it afterwards."""
    from kubernetes.client.exceptions import ApiException

    core = client.CoreV1Api(api)
    core.create_namespace(
        client.V1Namespace(
            metadata=client.V1ObjectMeta(name=name, labels={"aidbox.io/test": "true"})
        )
    )
    # Pods are rejected until the namespace's default ServiceAccount exists.
    wait_for(
        lambda: core.read_namespaced_service_account("default", name),
        timeout=30,
        message=f"ServiceAccount default in {name}",
    )
    try:
        yield name
    finally:
        try:
            core.delete_namespace(name, propagation_policy="Background")
        except ApiException as exc:
            if exc.status != 404:
                raise
