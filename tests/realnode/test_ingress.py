"""A real ingress controller in front of an AidboxCluster: Traefik (built from its own Go module,
aidbox_sandbox.traefik) runs as a pod on the real nodes and serves http://fhir.sandbox.test/
from the Ingress the operator renders for spec.ingress, routing to the stand-in's pods. The URL
the operator reports (status.url) and tells Aidbox (BOX_WEB_BASE_URL) is the URL served, and a
rolling restart (the aidbox.io/restart annotation) under steady traffic through the controller
loses no request. No DNS anywhere: requests go to the controller pod's IP, from a real node's
network namespace, with the Host header the controller routes by."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from ingress_controller import LABELS, TLS_PORT, WEB_PORT, manifests
from kubernetes import client
from standin import pods, standin_spec, wait_settled
from traffic import Traffic, get_json, get_json_tls

from aidbox_sandbox import build, pki, traefik
from aidbox_sandbox.realnode import RealNodes
from helpers import wait_for
from kube_helpers import (
    GROUP,
    PLURAL,
    VERSION,
    apply,
    create_cluster,
    get_cluster,
    make_config,
    namespace_lifetime,
)

pytestmark = pytest.mark.usefixtures("operator")

NAME = "box"
HOST = "fhir.sandbox.test"
URL = f"http://{HOST}"
RATE = 60.0
MIN_REQUESTS = 900
# The stand-in keeps accepting this long after SIGTERM, as in test_zero_downtime.py.
DRAIN = {"STANDIN_DRAIN_SECONDS": "5"}
RESULTS = Path(__file__).resolve().parents[2] / "build" / "realnode-traffic.jsonl"


@dataclass(frozen=True)
class Controller:
    ip: str  # the Traefik pod's IP: requests go there, with Host: HOST
    holder: int  # a real node's namespace holder, to send them from
    ingress_class: str
    pki: pki.PkiPaths  # the sandbox CA, which signs the test's serving certificate


def _ready_pod(api: client.ApiClient, namespace: str) -> client.V1Pod | None:
    selector = ",".join(f"{k}={v}" for k, v in LABELS.items())
    for pod in client.CoreV1Api(api).list_namespaced_pod(namespace, label_selector=selector).items:
        conditions = pod.status.conditions or []
        if any(c.type == "Ready" and c.status == "True" for c in conditions):
            return pod
    return None


def _delete_cluster_wide(api: client.ApiClient, name: str) -> None:
    rbac = client.RbacAuthorizationV1Api(api)
    networking = client.NetworkingV1Api(api)
    for delete in (
        rbac.delete_cluster_role,
        rbac.delete_cluster_role_binding,
        networking.delete_ingress_class,
    ):
        try:
            delete(name)
        except client.ApiException as exc:
            if exc.status != 404:
                raise


@pytest.fixture(scope="module")
def controller(api_client: client.ApiClient, real_nodes: RealNodes) -> Iterator[Controller]:
    started = time.monotonic()
    real_nodes.import_image(traefik.image_archive(build.cache_root() / "images"))
    suffix = secrets.token_hex(3)
    ingress_class = f"sandbox-traefik-{suffix}"
    lifetime = namespace_lifetime(api_client, f"ingress-{suffix}")
    namespace = next(lifetime)
    try:
        for doc in manifests(namespace, ingress_class):
            apply(api_client, doc)
        pod = wait_for(
            lambda: _ready_pod(api_client, namespace),
            timeout=120,
            interval=0.5,
            message=f"Traefik ready in {namespace}",
        )
        print(f"\nTraefik {traefik.TRAEFIK_VERSION} ready in {time.monotonic() - started:.1f}s")
        holder = real_nodes.holder("real-node-0")
        yield Controller(pod.status.pod_ip, holder, ingress_class, real_nodes.cluster.pki)
    finally:
        _delete_cluster_wide(api_client, ingress_class)
        next(lifetime, None)  # deletes the namespace


def through_ingress(controller: Controller, path: str, host: str = HOST) -> Any:
    url = f"http://{controller.ip}:{WEB_PORT}{path}"
    return get_json(controller.holder, url, host=host)


def restart(api: client.ApiClient, namespace: str) -> None:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    body = {"metadata": {"annotations": {"aidbox.io/restart": stamp}}}
    client.CustomObjectsApi(api).patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, NAME, body
    )


def names(api: client.ApiClient, namespace: str) -> set[str]:
    return {p.metadata.name for p in pods(api, NAME, namespace)}


def served_url(api: client.ApiClient, namespace: str, controller: Controller) -> None:
    """The operator's URL is the one served, and every pod was told it."""
    assert get_cluster(api, NAME, namespace)["status"]["url"] == URL
    health = through_ingress(controller, "/health")
    assert health["about"]["webBaseUrl"] == URL, health["about"]
    for pod in pods(api, NAME, namespace):
        direct = get_json(controller.holder, f"http://{pod.status.pod_ip}:8080/health")
        assert direct["about"]["webBaseUrl"] == URL, (pod.metadata.name, direct["about"])
    # Routed by host: another name is not this cluster's (Traefik answers 404).
    assert through_ingress(controller, "/health", host="other.sandbox.test") is None


def record(result: dict[str, Any], figures: dict[str, float]) -> None:
    """Print the figures and append them to the real-node traffic results."""
    print(
        f"\nrolling restart through Traefik: {result['sent']} sent, {result['ok']} ok, "
        f"{result['failed']} failed {result['errors']} in {result['seconds']}s; "
        f"pods {result['pods']}; {figures}"
    )
    line = {k: v for k, v in result.items() if k != "failures"}
    RESULTS.parent.mkdir(exist_ok=True)
    with RESULTS.open("a") as fh:
        fh.write(json.dumps({**line, **figures, "scenario": "ingress-restart"}) + "\n")


def test_ingress_serves_the_cluster_url_through_a_rolling_restart(
    api_client: client.ApiClient, namespace: str, controller: Controller, tmp_path: Path
) -> None:
    api = api_client
    figures: dict[str, float] = {}
    make_config(api, NAME, namespace, data={"BOX_ID": NAME, **DRAIN})
    spec = standin_spec(2, ingress={"className": controller.ingress_class, "hosts": [HOST]})
    started = time.monotonic()
    create_cluster(api, NAME, namespace, **spec)
    wait_settled(api, NAME, namespace, 2)
    wait_for(
        lambda: through_ingress(controller, "/"),
        timeout=60,
        interval=0.5,
        message=f"Traefik serving {URL}/",
    )
    figures["served through the ingress after"] = round(time.monotonic() - started, 1)
    served_url(api, namespace, controller)

    before = names(api, namespace)
    out = tmp_path / "restart.json"
    with Traffic(controller.holder, controller.ip, WEB_PORT, out, RATE, host_header=HOST) as load:
        load.run_until(int(RATE))  # a second of traffic before the restart
        started = time.monotonic()
        restart(api, namespace)
        wait_for(lambda: not names(api, namespace) & before, 180, 0.5, "every pod replaced")
        wait_settled(api, NAME, namespace, 2)
        figures["restart took"] = round(time.monotonic() - started, 1)
        load.run_until(MIN_REQUESTS)
        result = load.stop()
    after = names(api, namespace)
    record(result, figures)
    assert result["sent"] >= MIN_REQUESTS
    assert result["failed"] == 0, f"failed requests: {result['errors']} at {result['failures']}"
    assert set(result["pods"]) & before and set(result["pods"]) & after, result["pods"]
    served = {through_ingress(controller, "/")["pod"] for _ in range(6)}
    assert served <= after, f"served by {served} after the restart; pods now {after}"
    served_url(api, namespace, controller)


def test_tls_host_is_served_at_the_https_url(
    api_client: client.ApiClient, namespace: str, controller: Controller
) -> None:
    """spec.ingress.tlsSecretName: Traefik serves the host over TLS with the Secret's
    certificate, and the URL reported and given to Aidbox is https."""
    api, host = api_client, "fhir-tls.sandbox.test"
    cert, key = pki.issue(controller.pki, f"ingress-{namespace}", host, server_dns=(host,))
    secret = {
        "metadata": {"name": "fhir-tls"},
        "type": "kubernetes.io/tls",
        "stringData": {"tls.crt": cert.read_text(), "tls.key": key.read_text()},
    }
    client.CoreV1Api(api).create_namespaced_secret(namespace, secret)
    make_config(api, NAME, namespace, data={"BOX_ID": NAME})
    ingress = {"className": controller.ingress_class, "hosts": [host], "tlsSecretName": "fhir-tls"}
    create_cluster(api, NAME, namespace, **standin_spec(1, ingress=ingress))
    wait_settled(api, NAME, namespace, 1)
    ca = controller.pki.ca_cert
    health = wait_for(
        lambda: get_json_tls(controller.holder, controller.ip, TLS_PORT, host, ca),
        timeout=60,
        interval=0.5,
        message=f"Traefik serving https://{host}/ with the Secret's certificate",
    )
    assert get_cluster(api, NAME, namespace)["status"]["url"] == f"https://{host}"
    assert health["about"]["webBaseUrl"] == f"https://{host}", health["about"]
    # The certificate is the Secret's, for this host only: another name fails verification.
    assert get_json_tls(controller.holder, controller.ip, TLS_PORT, "x.sandbox.test", ca) is None
