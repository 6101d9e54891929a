"""A real PostgreSQL behind the Aidbox stand-in on real nodes.

PostgreSQL is Debian's postgresql-15, packed by the sandbox as an image (aidbox_sandbox.postgres)
and run as a pod; the stand-in, like Aidbox, does not start without its database and checks it
in /health. spec.database wires the Service's address and a Secret's credentials. The cluster is
Ready only with the right credentials; wrong ones are reported as the database refusing them
(DatabaseRefused, PostgreSQL's own words), a stopped database as unreachable
(DatabaseUnreachable), each with the verdicts README promises, and both clear once fixed. The
init bundle (spec.initBundle) is read by every pod from the file the operator mounts.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

import pytest
from kubernetes import client
from standin import NO_DATABASE, pods, standin_spec, wait_settled
from traffic import get_json

from aidbox_sandbox import build, postgres
from aidbox_sandbox.nodeconfig import REAL_NODE_LABEL
from aidbox_sandbox.realnode import RealNodes
from health_verdicts import EXPECTED, ArgoHealth, kstatus_verdicts
from helpers import wait_for
from kube_helpers import condition, create_cluster, get_cluster, make_config, wait_condition

pytestmark = pytest.mark.usefixtures("operator")

NAME = "box"
USER, DATABASE = "aidbox", "fhir"
PASSWORD = "right-Pa55word"
BUNDLE = json.dumps({"resourceType": "Bundle", "type": "transaction", "entry": []})
ON_REAL_NODES: dict[str, Any] = {
    "nodeSelector": {REAL_NODE_LABEL: "true"},
    "tolerations": [{"key": REAL_NODE_LABEL, "operator": "Exists", "effect": "NoSchedule"}],
}


@pytest.fixture(scope="module")
def postgres_image(real_nodes: RealNodes) -> str:
    real_nodes.import_image(postgres.image_archive(build.cache_root() / "images"))
    return postgres.POSTGRES_IMAGE


def _secret(api: client.ApiClient, ns: str, name: str, data: dict[str, str]) -> None:
    body = {"metadata": {"name": name}, "stringData": data}
    client.CoreV1Api(api).create_namespaced_secret(ns, body)


def _postgres_pod(image: str) -> dict[str, Any]:
    def env(name: str, value: str) -> dict[str, Any]:
        return {"name": name, "value": value}

    password = {"secretKeyRef": {"name": "pg-superuser", "key": "password"}}
    container = {
        "name": "postgres",
        "image": image,
        "imagePullPolicy": "Never",
        "env": [
            env("POSTGRES_USER", USER),
            env("POSTGRES_DB", DATABASE),
            {"name": "POSTGRES_PASSWORD", "valueFrom": password},
        ],
        "ports": [{"containerPort": 5432}],
        "readinessProbe": {"tcpSocket": {"port": 5432}, "periodSeconds": 1},
        "volumeMounts": [{"name": "data", "mountPath": postgres.DATA_MOUNT}],
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}},
    }
    return {
        "metadata": {"labels": {"app": "pg"}},
        "spec": {
            **ON_REAL_NODES,
            "terminationGracePeriodSeconds": 5,
            "containers": [container],
            "volumes": [{"name": "data", "emptyDir": {}}],
        },
    }


def start_postgres(api: client.ApiClient, ns: str, image: str) -> str:
    """PostgreSQL as a one-replica Deployment behind a Service; returns the Service's address
    (the sandbox has no cluster DNS)."""
    _secret(api, ns, "pg-superuser", {"password": PASSWORD})
    deployment = {
        "metadata": {"name": "pg"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "pg"}},
            "template": _postgres_pod(image),
        },
    }
    client.AppsV1Api(api).create_namespaced_deployment(ns, deployment)
    service = {
        "metadata": {"name": "pg"},
        "spec": {"selector": {"app": "pg"}, "ports": [{"port": 5432, "targetPort": 5432}]},
    }
    created = client.CoreV1Api(api).create_namespaced_service(ns, service)
    scale_postgres(api, ns, 1)
    return str(created.spec.cluster_ip)


def scale_postgres(api: client.ApiClient, ns: str, replicas: int) -> None:
    apps = client.AppsV1Api(api)
    apps.patch_namespaced_deployment_scale("pg", ns, {"spec": {"replicas": replicas}})

    def settled() -> bool:
        status = apps.read_namespaced_deployment("pg", ns).status
        return (status.ready_replicas or 0) == replicas == (status.replicas or 0)

    wait_for(settled, timeout=120, interval=0.5, message=f"PostgreSQL at {replicas} replicas")


def assert_verdicts(api: client.ApiClient, ns: str, scenario: str) -> None:
    body = get_cluster(api, NAME, ns)
    row = EXPECTED[scenario]
    got = (kstatus_verdicts([body])[0]["status"], ArgoHealth()(body)["status"])
    assert got == (row.kstatus, row.argocd), f"{scenario}: {got}; status {body.get('status')}"


def _timed(what: str, started: float, figures: dict[str, float]) -> None:
    figures[what] = round(time.monotonic() - started, 1)
    print(f"\n{what}: {figures[what]} s", flush=True)


def assert_bundle_read(api: client.ApiClient, ns: str, holder: int) -> None:
    """Every pod read the ConfigMap's bytes from the file BOX_INIT_BUNDLE names."""
    want = hashlib.sha256(BUNDLE.encode()).hexdigest()
    for pod in pods(api, NAME, ns):
        health = get_json(holder, f"http://{pod.status.pod_ip}:8080/health")
        about = health["about"]["initBundle"]
        assert about["url"] == "file:///aidbox-init/bundle.json", about
        assert about["sha256"] == want, about


def test_credentials_decide_readiness_and_database_failures_are_named(
    api_client: client.ApiClient, namespace: str, postgres_image: str, real_nodes: RealNodes
) -> None:
    api, ns, figures = api_client, namespace, {}
    address = start_postgres(api, ns, postgres_image)
    _secret(api, ns, "aidbox-db", {"username": USER, "password": "wrong-password"})
    make_config(api, NAME, ns, data={"BOX_ID": NAME})
    bundle = {"metadata": {"name": "init"}, "data": {"bundle.json": BUNDLE}}
    client.CoreV1Api(api).create_namespaced_config_map(ns, bundle)
    spec = standin_spec(2, env=[{"name": "STANDIN_DB_WAIT_SECONDS", "value": "2"}])
    spec["env"] = [e for e in spec["env"] if e != NO_DATABASE]
    spec["database"] = {
        "host": address,
        "port": 5432,
        "name": DATABASE,
        "credentials": {"secretName": "aidbox-db"},
    }
    spec["initBundle"] = {"configMapName": "init", "key": "bundle.json"}
    started = time.monotonic()
    create_cluster(api, NAME, ns, **spec)
    stalled = wait_condition(api, NAME, ns, "Stalled", "True", "DatabaseRefused", timeout=120)
    _timed("wrong credentials reported", started, figures)
    message = condition(stalled, "Stalled")["message"]
    assert f'password authentication failed for user "{USER}"' in message, message
    assert condition(stalled, "Ready")["status"] == "False"
    assert_verdicts(api, ns, "database refuses the credentials")

    started = time.monotonic()
    client.CoreV1Api(api).patch_namespaced_secret(
        "aidbox-db", ns, {"stringData": {"password": PASSWORD}}
    )
    wait_settled(api, NAME, ns, 2, timeout=180)
    wait_condition(api, NAME, ns, "Ready", "True", timeout=60)
    _timed("Ready after the credentials were corrected", started, figures)
    assert_verdicts(api, ns, "ready")
    assert_bundle_read(api, ns, real_nodes.holder("real-node-0"))

    started = time.monotonic()
    scale_postgres(api, ns, 0)
    stalled = wait_condition(api, NAME, ns, "Stalled", "True", "DatabaseUnreachable", timeout=180)
    _timed("database outage reported", started, figures)
    assert f"Connection to {address}:5432 refused" in condition(stalled, "Stalled")["message"]
    assert_verdicts(api, ns, "database unreachable")

    started = time.monotonic()
    scale_postgres(api, ns, 1)
    wait_settled(api, NAME, ns, 2, timeout=300)
    wait_condition(api, NAME, ns, "Ready", "True", timeout=60)
    _timed("Ready again after the database came back", started, figures)
    assert condition(get_cluster(api, NAME, ns), "Stalled")["status"] == "False"
