"""Zero downtime with real traffic: real pods of the Aidbox stand-in on two real nodes, the real
operator, and a load generator inside a node's network namespace sending a steady stream of new
connections to the Service's ClusterIP while the cluster is rolled, restarted, scaled, has a pod
deleted, and has a node drained. With the operator's protections every request succeeds; with
them off (control) requests fail, which proves the check can fail."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from standin import NEW, evict, evict_all_from, pods, standin_spec, wait_settled
from traffic import Traffic, get_json

from aidbox_sandbox.images import standin_image
from helpers import wait_for
from kube_helpers import create_cluster, make_config, patch_spec

pytestmark = pytest.mark.usefixtures("operator")

NAME = "box"
MIN_REQUESTS = 1000
RATE = 60.0
# The stand-in keeps accepting this long after SIGTERM (like a server finishing its queue).
DRAIN = {"STANDIN_DRAIN_SECONDS": "5"}
RESULTS = Path(__file__).resolve().parents[2] / "build" / "realnode-traffic.jsonl"


@dataclass
class Box:
    api: client.ApiClient
    namespace: str
    holder: int
    ip: str
    port: int
    workdir: Path
    replicas: int


def launch(
    api: client.ApiClient,
    namespace: str,
    real_nodes: Any,
    workdir: Path,
    config: dict[str, str],
    **spec: Any,
) -> Box:
    make_config(api, NAME, namespace, data={"BOX_ID": NAME, **config})
    body = standin_spec(**spec)
    create_cluster(api, NAME, namespace, **body)
    wait_settled(api, NAME, namespace, body["replicas"])
    svc = client.CoreV1Api(api).read_namespaced_service(NAME, namespace)
    box = Box(
        api,
        namespace,
        real_nodes.holder("real-node-0"),
        svc.spec.cluster_ip,
        svc.spec.ports[0].port,
        workdir,
        body["replicas"],
    )
    # kube-proxy programs the Service a moment after the pods turn Ready.
    wait_for(
        lambda: get_json(box.holder, f"http://{box.ip}:{box.port}/"),
        timeout=30,
        message="the Service answering from the node's netns",
    )
    return box


def under_load(box: Box, scenario: str, act: Callable[[], None]) -> dict[str, Any]:
    """Steady load from before `act` until the cluster has settled again and at least
    MIN_REQUESTS were sent; returns the load generator's summary."""
    with Traffic(box.holder, box.ip, box.port, box.workdir / f"{scenario}.json", RATE) as load:
        load.run_until(int(RATE))  # a second of traffic before anything happens
        act()
        load.run_until(MIN_REQUESTS)
        result = load.stop()
    result["scenario"] = scenario
    RESULTS.parent.mkdir(exist_ok=True)
    with RESULTS.open("a") as fh:
        fh.write(json.dumps({k: v for k, v in result.items() if k != "failures"}) + "\n")
    print(
        f"\n{scenario}: {result['sent']} sent, {result['ok']} ok, {result['failed']} failed "
        f"{result['errors']} in {result['seconds']}s; versions {result['versions']}"
    )
    return result


def assert_no_failures(result: dict[str, Any]) -> None:
    assert result["sent"] >= MIN_REQUESTS
    assert result["failed"] == 0, f"failed requests: {result['errors']} at {result['failures']}"
    assert result["ok"] == result["sent"]


def names(box: Box) -> set[str]:
    return {p.metadata.name for p in pods(box.api, NAME, box.namespace)}


@pytest.fixture
def box(api_client: client.ApiClient, namespace: str, real_nodes: Any, tmp_path: Path) -> Box:
    return launch(api_client, namespace, real_nodes, tmp_path, DRAIN)


def test_replicas_share_one_jwt_key_set(box: Box) -> None:
    """Every replica got the operator's generated keys: one fingerprint, from the environment."""
    about = []
    for pod in pods(box.api, NAME, box.namespace):
        health = get_json(box.holder, f"http://{pod.status.pod_ip}:8080/health")
        assert health["status"] == "pass"
        about.append(health["about"])
    assert len(about) == box.replicas
    assert {a["authKeysSource"] for a in about} == {"environment"}
    assert len({a["authKeysFingerprint"] for a in about}) == 1
    assert {a["version"] for a in about} == {"2510.1"}


def test_image_rollout_under_load(box: Box) -> None:
    before = names(box)

    def act() -> None:
        patch_spec(box.api, NAME, box.namespace, {"image": standin_image(NEW)})
        wait_settled(box.api, NAME, box.namespace, box.replicas, standin_image(NEW))

    result = under_load(box, "image-rollout", act)
    assert not names(box) & before
    assert set(result["versions"]) == {"2510.1", NEW}, "traffic saw both versions"
    assert_no_failures(result)


def test_config_change_rolling_restart_under_load(box: Box) -> None:
    before = names(box)

    def act() -> None:
        client.CoreV1Api(box.api).patch_namespaced_config_map(
            NAME, box.namespace, {"data": {"BOX_WEB_BASE_URL": "http://changed.example"}}
        )
        wait_for(lambda: not names(box) & before, timeout=180, message="every pod replaced")
        wait_settled(box.api, NAME, box.namespace, box.replicas)

    assert_no_failures(under_load(box, "config-restart", act))


def test_scale_down_under_load(box: Box) -> None:
    def act() -> None:
        patch_spec(box.api, NAME, box.namespace, {"replicas": 2})
        wait_settled(box.api, NAME, box.namespace, 2)

    assert_no_failures(under_load(box, "scale-down", act))


def test_pod_deletion_under_load(box: Box) -> None:
    victim = sorted(names(box))[0]

    def act() -> None:
        client.CoreV1Api(box.api).delete_namespaced_pod(victim, box.namespace)
        wait_for(lambda: victim not in names(box), timeout=120, message=f"{victim} gone")
        wait_settled(box.api, NAME, box.namespace, box.replicas)

    assert_no_failures(under_load(box, "pod-deletion", act))


def test_node_drain_under_load(box: Box) -> None:
    core = client.CoreV1Api(box.api)
    on_node: dict[str, int] = {}
    for pod in pods(box.api, NAME, box.namespace):
        on_node[pod.spec.node_name] = on_node.get(pod.spec.node_name, 0) + 1
    drained = max(on_node, key=lambda n: on_node[n])
    # The drained node's pods first: the first is evicted, the second is one too many.
    first, second = sorted(
        (p.spec.node_name != drained, p.metadata.name) for p in pods(box.api, NAME, box.namespace)
    )[:2]
    beyond: list[bool] = []

    def act() -> None:
        core.patch_node(drained, {"spec": {"unschedulable": True}})
        wait_for(
            lambda: evict(box.api, box.namespace, first[1]),
            timeout=60,
            message=f"{first[1]} evicted within the budget",
        )
        # One pod down and not yet replaced: the budget (one at a time) allows no other,
        # whether or not the drained node holds a second pod of the cluster.
        beyond.append(not evict(box.api, box.namespace, second[1]))
        evict_all_from(box.api, NAME, box.namespace, drained)
        wait_settled(box.api, NAME, box.namespace, box.replicas)

    try:
        result = under_load(box, f"node-drain({on_node[drained]} pods)", act)
    finally:
        core.patch_node(drained, {"spec": {"unschedulable": False}})
    assert {p.spec.node_name for p in pods(box.api, NAME, box.namespace)} == (
        set(on_node) | {"real-node-0", "real-node-1"}
    ) - {drained}
    assert beyond == [True], "the PDB let a second pod be evicted while one was down"
    assert_no_failures(result)


def test_control_without_protections_loses_requests(
    api_client: client.ApiClient, namespace: str, real_nodes: Any, tmp_path: Path
) -> None:
    """Same traffic, a rolling restart with the protections off (no preStop pause, one pod may
    be unavailable, the server stops at once on SIGTERM): requests fail. If this ever sees
    none, the zero-failure tests above prove nothing."""
    box = launch(
        api_client,
        namespace,
        real_nodes,
        tmp_path,
        {"STANDIN_DRAIN_SECONDS": "0"},
        preStopDelaySeconds=0,
        rollingUpdate={"maxSurge": 1, "maxUnavailable": 1},
    )
    before = names(box)

    def act() -> None:
        client.CoreV1Api(box.api).patch_namespaced_config_map(
            NAME, box.namespace, {"data": {"BOX_WEB_BASE_URL": "http://changed.example"}}
        )
        wait_for(lambda: not names(box) & before, timeout=180, message="every pod replaced")
        wait_settled(box.api, NAME, box.namespace, box.replicas)

    result = under_load(box, "control-no-protections", act)
    assert result["sent"] >= MIN_REQUESTS
    assert result["failed"] > 0, "with the protections off some requests must fail"
