"""An Ingress or HTTPRoute, the database, the license and the init bundle on the real API
server: what admission refuses, what the operator keeps and reports, and what it holds."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from helpers import wait_for
from kube_helpers import (
    HTTP_ROUTE_CRD,
    apply,
    condition,
    create_cluster,
    get_cluster,
    make_config,
    patch_spec,
    wait_condition,
)

pytestmark = pytest.mark.usefixtures("operator")
INGRESS = {"className": "nginx", "hosts": ["fhir.example.com"], "tlsSecretName": "fhir-tls"}
ROUTE = {"parentRefs": [{"name": "public"}], "hostnames": ["fhir.example.com"], "https": False}


def _ingress(api: Any, name: str, ns: str) -> client.V1Ingress | None:
    try:
        return client.NetworkingV1Api(api).read_namespaced_ingress(name, ns)
    except ApiException as err:
        if err.status == 404:
            return None
        raise


def _env(api: Any, name: str, ns: str) -> dict[str, Any]:
    deployment = client.AppsV1Api(api).read_namespaced_deployment(name, ns)
    container = deployment.spec.template.spec.containers[0]
    return {e.name: e.value or e.value_from for e in container.env or []}


def test_an_ingress_is_owned_reported_and_pruned(api_client: Any, namespace: str) -> None:
    make_config(api_client, "web", namespace)
    created = create_cluster(api_client, "web", namespace, ingress=INGRESS)
    body = wait_condition(api_client, "web", namespace, "Ready")
    assert body["status"]["url"] == "https://fhir.example.com"
    ingress = _ingress(api_client, "web", namespace)
    assert ingress is not None and ingress.spec.ingress_class_name == "nginx"
    assert ingress.metadata.owner_references[0].uid == created["metadata"]["uid"]
    assert _env(api_client, "web", namespace)["BOX_WEB_BASE_URL"] == "https://fhir.example.com"
    patch_spec(api_client, "web", namespace, {"ingress": None})
    wait_for(
        lambda: _ingress(api_client, "web", namespace) is None,
        timeout=60,
        message="the Ingress pruned",
    )
    body = wait_condition(api_client, "web", namespace, "Ready")
    assert "url" not in body["status"]


def test_an_http_route_waits_for_the_gateway_api(api_client: Any, namespace: str) -> None:
    ext = client.ApiextensionsV1Api(api_client)
    crd_name = HTTP_ROUTE_CRD["metadata"]["name"]
    try:
        ext.delete_custom_resource_definition(crd_name)
    except ApiException as err:
        assert err.status == 404
    wait_for(
        lambda: all(
            c.metadata.name != crd_name for c in ext.list_custom_resource_definition().items
        ),
        timeout=30,
        message="no HTTPRoute CRD",
    )
    make_config(api_client, "gw", namespace)
    create_cluster(api_client, "gw", namespace, httpRoute=ROUTE)
    wait_condition(api_client, "gw", namespace, "Degraded", reason="HTTPRouteUnavailable")
    # Everything else is applied: the pods serve behind their Service.
    body = wait_condition(api_client, "gw", namespace, "Ready")
    assert condition(body, "Degraded")["reason"] == "HTTPRouteUnavailable"
    assert "url" not in body["status"]
    apply(api_client, HTTP_ROUTE_CRD)

    def route() -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = client.CustomObjectsApi(
                api_client
            ).get_namespaced_custom_object(
                "gateway.networking.k8s.io", "v1", namespace, "httproutes", "gw"
            )
            return found
        except ApiException as err:
            if err.status == 404:
                return None
            raise

    made = wait_for(route, timeout=90, message="the HTTPRoute, once its CRD exists")
    assert made["spec"]["rules"][0]["backendRefs"] == [{"name": "gw", "port": 8080}]
    body = wait_condition(api_client, "gw", namespace, "Degraded", status="False")
    assert body["status"]["url"] == "http://fhir.example.com"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"ingress": INGRESS, "httpRoute": ROUTE}, "set ingress or httpRoute, not both"),
        ({"database": {"host": "pg", "cloudNativePG": {"name": "pg"}}}, "exactly one"),
        (
            {"database": {"cloudNativePG": {"name": "pg"}, "credentials": {"secretName": "x"}}},
            "do not set name, credentials or readReplica",
        ),
        ({"ingress": {"hosts": ["not a host"]}}, "spec.ingress.hosts[0]"),
        ({"license": {"name": "lic", "key": "a b"}}, "spec.license.key"),
    ],
)
def test_admission_refuses_what_cannot_work(
    api_client: Any, namespace: str, spec: dict[str, Any], message: str
) -> None:
    with pytest.raises(ApiException) as err:
        create_cluster(api_client, "bad", namespace, **spec)
    assert err.value.status == 422 and message in str(err.value.body)


def test_a_license_key_missing_holds_the_rollout(api_client: Any, namespace: str) -> None:
    make_config(api_client, "lic", namespace)
    create_cluster(api_client, "lic", namespace)
    wait_condition(api_client, "lic", namespace, "Ready")
    apps = client.AppsV1Api(api_client)
    before = apps.read_namespaced_deployment("lic", namespace).metadata.generation
    core = client.CoreV1Api(api_client)
    secret = client.V1Secret(metadata=client.V1ObjectMeta(name="license"), string_data={"x": "y"})
    core.create_namespaced_secret(namespace, secret)
    patch_spec(api_client, "lic", namespace, {"license": {"name": "license"}})
    body = wait_condition(api_client, "lic", namespace, "Reconciling", reason="MissingReference")
    assert "key license of Secret/license" in condition(body, "Reconciling")["message"]
    assert get_cluster(api_client, "lic", namespace)["status"]["observedGeneration"] == 1
    assert apps.read_namespaced_deployment("lic", namespace).metadata.generation == before
    core.patch_namespaced_secret("license", namespace, {"stringData": {"license": "test-only"}})
    wait_condition(api_client, "lic", namespace, "Ready")
    wanted = _env(api_client, "lic", namespace)["BOX_LICENSE"].secret_key_ref
    assert (wanted.name, wanted.key) == ("license", "license")
