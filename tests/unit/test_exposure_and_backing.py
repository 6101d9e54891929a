"""Ingress/HTTPRoute, database, license and init bundle: the model's refusals, the wiring the
pods get, and what a pass does with them (on the in-memory FakeKube)."""

from __future__ import annotations

from typing import Any

import pytest
from fakeapi import Harness
from pydantic import ValidationError

from aidbox_operator.model import AidboxCluster, AidboxClusterSpec
from aidbox_operator.render import RenderContext, render_cluster

IMAGE = "healthsamurai/aidboxone:2510"
INGRESS = {"hosts": ["fhir.example.com"], "tlsSecretName": "fhir-tls"}


def _env(h: Harness) -> dict[str, Any]:
    deployment = h.api.get_object("Deployment", "aidbox")
    assert deployment is not None
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def _cluster(**spec: Any) -> AidboxCluster:
    return AidboxCluster.model_validate(
        {"metadata": {"name": "fhir", "namespace": "ns"}, "spec": spec}
    )


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"ingress": {"hosts": ["Bad Host"]}}, "hosts.0"),
        ({"ingress": {"hosts": []}}, "at least 1"),
        (
            {"ingress": INGRESS, "httpRoute": {"parentRefs": [{"name": "gw"}], "hostnames": ["a"]}},
            "not both",
        ),
        ({"httpRoute": {"hostnames": ["a.example.com"]}}, "parentRefs"),
        ({"database": {"port": 5432}}, "exactly one"),
        ({"database": {"host": "pg", "cloudNativePG": {"name": "pg"}}}, "exactly one"),
        (
            {"database": {"cloudNativePG": {"name": "pg"}, "credentials": {"secretName": "s"}}},
            "do not set",
        ),
        ({"database": {"host": "pg", "port": 0}}, "port"),
        ({"license": {"name": "lic", "key": "no spaces"}}, "key"),
        ({"initBundle": {"key": "bundle.json"}}, "configMapName"),
    ],
)
def test_invalid_exposure_and_backing_are_refused_with_the_field_named(
    spec: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError) as err:
        AidboxClusterSpec.model_validate(spec)
    assert message in str(err.value)


def test_base_url_follows_the_host_unless_the_user_sets_it() -> None:
    def env(cluster: AidboxCluster, keys: frozenset[str] = frozenset()) -> dict[str, str]:
        deployment = render_cluster(cluster, RenderContext(user_keys=keys))[0]
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        return {e["name"]: e.get("value") for e in container.get("env", [])}

    assert env(_cluster(ingress=INGRESS))["BOX_WEB_BASE_URL"] == "https://fhir.example.com"
    plain = {"hosts": ["fhir.example.com"], "path": "/fhir/"}
    assert env(_cluster(ingress=plain))["BOX_WEB_BASE_URL"] == "http://fhir.example.com/fhir"
    # Set in the ConfigMap (its key names) or in spec.env: the operator's value would win
    # over the ConfigMap's (env beats envFrom), so it sets none.
    assert "BOX_WEB_BASE_URL" not in env(_cluster(ingress=INGRESS), frozenset({"AIDBOX_BASE_URL"}))
    own = _cluster(ingress=INGRESS, env=[{"name": "BOX_WEB_BASE_URL", "value": "https://x"}])
    assert env(own)["BOX_WEB_BASE_URL"] == "https://x"
    # Multibox behind a wildcard host learns its domain; Aidbox (one box) does not.
    wildcard = {"hosts": ["*.boxes.example.com"]}
    multibox = env(_cluster(image="healthsamurai/multibox:2510", ingress=wildcard))
    assert multibox["AIDBOX_CLUSTER_DOMAIN"] == "boxes.example.com"
    assert "AIDBOX_CLUSTER_DOMAIN" not in env(_cluster(image=IMAGE, ingress=wildcard))


def _ready(h: Harness, **spec: Any) -> None:
    h.config("ConfigMap", "aidbox", {"BOX_ID": "a"})
    h.config("Secret", "aidbox", {"BOX_ROOT_CLIENT_SECRET": "cw=="})
    h.cluster(**{"image": IMAGE, **spec})


async def test_an_ingress_is_kept_reported_and_pruned() -> None:
    h = Harness()
    _ready(h, ingress=INGRESS)
    result = await h.reconcile()
    assert ("Created", "Ingress aidbox") in result.changes
    ingress = h.api.get_object("Ingress", "aidbox")
    assert ingress is not None and ingress["spec"]["tls"][0]["secretName"] == "fhir-tls"
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "aidbox", "port": {"name": "http"}}
    h.roll_out()
    await h.reconcile()
    assert h.status()["url"] == "https://fhir.example.com"
    h.update_spec(ingress=None)
    result = await h.reconcile()
    assert ("Deleted", "Ingress aidbox") in result.changes
    h.roll_out()  # the base URL went from the pods' environment too
    await h.reconcile()
    assert h.api.get_object("Ingress", "aidbox") is None and "url" not in h.status()
    assert "BOX_WEB_BASE_URL" not in _env(h)


async def test_a_missing_gateway_api_is_reported_and_the_rest_applied() -> None:
    h = Harness()
    h.api.crd_missing.add("HTTPRoute")
    route = {"parentRefs": [{"name": "public"}], "hostnames": ["fhir.example.com"]}
    _ready(h, httpRoute=route)
    await h.reconcile()
    h.roll_out()
    await h.reconcile()
    assert h.api.get_object("Deployment", "aidbox") is not None
    assert h.condition("Degraded")["reason"] == "HTTPRouteUnavailable"
    assert "Gateway API" in h.condition("Degraded")["message"] and "url" not in h.status()
    h.api.crd_missing.clear()
    await h.reconcile()
    assert h.api.get_object("HTTPRoute", "aidbox") is not None
    assert h.status()["url"] == "https://fhir.example.com"


async def test_a_license_secret_or_key_missing_holds_the_rollout() -> None:
    h = Harness()
    _ready(h)
    await h.reconcile()
    h.roll_out()
    await h.reconcile()
    before = h.api.get_object("Deployment", "aidbox")
    h.update_spec(license={"name": "lic"})
    await h.reconcile()
    assert h.status()["missingReferences"] == ["Secret/lic"]
    h.config("Secret", "lic", {"other": "eA=="})
    await h.reconcile()
    assert h.status()["missingReferences"] == ["key license of Secret/lic"]
    assert h.condition("Reconciling")["reason"] == "MissingReference"
    assert h.api.get_object("Deployment", "aidbox") == before, "what runs is untouched"
    h.config("Secret", "lic", {"license": "bGlj"})
    await h.reconcile()
    assert _env(h)["BOX_LICENSE"] == {"secretKeyRef": {"name": "lic", "key": "license"}}


async def test_a_new_license_or_init_bundle_rolls_the_pods() -> None:
    h = Harness()
    h.config("Secret", "lic", {"license": "b25l"})
    h.config("ConfigMap", "init", {"init-bundle.json": "{}"})
    _ready(h, license={"name": "lic"}, initBundle={"configMapName": "init"})
    await h.reconcile()
    h.roll_out()
    await h.reconcile()

    def template_hash() -> str:
        deployment = h.api.get_object("Deployment", "aidbox")
        assert deployment is not None
        return str(deployment["spec"]["template"]["metadata"]["annotations"])

    first = template_hash()
    h.config("Secret", "lic", {"license": "dHdv"})
    await h.reconcile()
    second = template_hash()
    assert second != first
    h.config("ConfigMap", "init", {"init-bundle.json": '{"resourceType": "Bundle"}'})
    await h.reconcile()
    assert template_hash() not in (first, second)
    assert _env(h)["BOX_INIT_BUNDLE"] == "file:///aidbox-init/init-bundle.json"


async def test_a_cloudnativepg_cluster_is_wired_from_its_app_secret() -> None:
    h = Harness()
    _ready(h, database={"cloudNativePG": {"name": "pg"}})
    await h.reconcile()
    assert h.status()["missingReferences"] == ["Secret/pg-app"]
    h.config("Secret", "pg-app", {"username": "YQ==", "password": "cA==", "dbname": "ZA=="})
    await h.reconcile()
    env = _env(h)
    assert env["BOX_DB_HOST"] == "pg-rw" and env["BOX_DB_PORT"] == "5432"
    assert env["BOX_DB_PASSWORD"] == {"secretKeyRef": {"name": "pg-app", "key": "password"}}
    assert "BOX_DB_RO_REPLICA_HOST" not in env
