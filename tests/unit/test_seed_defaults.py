"""The defaults reproduce the seed HA Deployment (tests/unit/data/seed-deployment.yaml)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from aidbox_operator.model import AidboxCluster
from aidbox_operator.render import build_deployment, build_service, render_cluster

SEED = yaml.safe_load((Path(__file__).parent / "data" / "seed-deployment.yaml").read_text())


def _default_cluster() -> AidboxCluster:
    return AidboxCluster.model_validate({"metadata": {"name": "aidbox", "namespace": "production"}})


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers: list[dict[str, Any]] = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def test_default_deployment_reproduces_seed() -> None:
    ours = build_deployment(_default_cluster())
    assert ours["metadata"]["name"] == SEED["metadata"]["name"]
    assert ours["metadata"]["namespace"] == SEED["metadata"]["namespace"]
    assert ours["spec"]["replicas"] == SEED["spec"]["replicas"] == 2
    seed_c, our_c = _container(SEED), _container(ours)
    for field in (
        "name",
        "image",
        "imagePullPolicy",
        "ports",
        "envFrom",
        "livenessProbe",
        "readinessProbe",
    ):
        if field == "ports":
            assert [
                {k: p[k] for k in ("containerPort", "protocol")} for p in our_c["ports"]
            ] == seed_c["ports"]
        else:
            assert our_c[field] == seed_c[field], field


def test_probe_values_from_seed() -> None:
    container = _container(build_deployment(_default_cluster()))
    liveness, readiness = container["livenessProbe"], container["readinessProbe"]
    assert liveness["failureThreshold"] == 4 and readiness["failureThreshold"] == 2
    for probe in (liveness, readiness):
        assert probe["httpGet"] == {"path": "/health", "port": 8080, "scheme": "HTTP"}
        assert (
            probe["initialDelaySeconds"],
            probe["timeoutSeconds"],
            probe["periodSeconds"],
            probe["successThreshold"],
        ) == (20, 5, 5, 1)


def test_service_selects_exactly_the_pods() -> None:
    cluster = _default_cluster()
    deployment, service = build_deployment(cluster), build_service(cluster)
    selector = service["spec"]["selector"]
    assert selector == deployment["spec"]["selector"]["matchLabels"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= pod_labels.items()
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"][0]["targetPort"] == "http"


def test_ha_defaults() -> None:
    deployment = build_deployment(_default_cluster())
    strategy = deployment["spec"]["strategy"]
    assert strategy == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    pod = deployment["spec"]["template"]["spec"]
    keys = [c["topologyKey"] for c in pod["topologySpreadConstraints"]]
    assert keys == ["topology.kubernetes.io/zone", "kubernetes.io/hostname"]
    assert all(c["whenUnsatisfiable"] == "ScheduleAnyway" for c in pod["topologySpreadConstraints"])
    container = _container(deployment)
    assert container["startupProbe"]["httpGet"]["path"] == "/health"
    pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pod["terminationGracePeriodSeconds"] > pre_stop


def test_disruption_budget_only_with_two_or_more_replicas() -> None:
    def kinds(replicas: int) -> list[str]:
        cluster = AidboxCluster.model_validate(
            {"metadata": {"name": "a", "namespace": "n"}, "spec": {"replicas": replicas}}
        )
        return [m["kind"] for m in render_cluster(cluster)]

    assert "PodDisruptionBudget" in kinds(2)
    assert "PodDisruptionBudget" not in kinds(1)
    assert "PodDisruptionBudget" not in kinds(0)


def test_user_env_replaces_operator_env_of_same_name() -> None:
    cluster = AidboxCluster.model_validate(
        {
            "metadata": {"name": "a", "namespace": "n"},
            "spec": {"port": 9000, "env": [{"name": "BOX_WEB_PORT", "value": "9000"}]},
        }
    )
    env = _container(build_deployment(cluster))["env"]
    names = [e["name"] for e in env]
    assert names.count("BOX_WEB_PORT") == 1
    assert len(names) == len(set(names))


def test_no_owner_reference_without_uid() -> None:
    for manifest in render_cluster(_default_cluster()):
        assert "ownerReferences" not in manifest["metadata"]
