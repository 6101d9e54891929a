"""The HA promises on a real API server: rollouts without downtime, stuck rollouts reported,
config-driven restarts, disruption budget and zone spread, shared JWT keys."""

from __future__ import annotations

import base64
import threading
import time
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key, load_pem_public_key
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from helpers import wait_for
from kube_helpers import (
    condition,
    create_cluster,
    events_for,
    get_cluster,
    make_config,
    patch_spec,
    ready_endpoints,
    wait_condition,
    wait_event,
)
from operator_process import OperatorProcess, reconciles, requests, wait_counted

pytestmark = pytest.mark.usefixtures("operator")
NOT_READY_LABEL = "sandbox.aidbox.io/not-ready"
SELECTOR = "app.kubernetes.io/name=aidbox,app.kubernetes.io/instance={}"


def _pods(api: Any, name: str, ns: str) -> list[client.V1Pod]:
    return list(
        client.CoreV1Api(api).list_namespaced_pod(ns, label_selector=SELECTOR.format(name)).items
    )


def _replica_sets(api: Any, name: str, ns: str) -> list[client.V1ReplicaSet]:
    return list(
        client.AppsV1Api(api)
        .list_namespaced_replica_set(ns, label_selector=SELECTOR.format(name))
        .items
    )


def _rolled_out(api: Any, name: str, ns: str, image: str) -> dict[str, Any] | None:
    body = get_cluster(api, name, ns)
    status = body.get("status") or {}
    done = condition(body, "Ready").get("status") == "True" and status.get("image") == image
    return body if done and status.get("updatedReplicas") == body["spec"]["replicas"] else None


class EndpointSampler:
    """Follows the Service's EndpointSlices through a watch, so every change is seen (not
    sampled), and keeps the smallest number of ready endpoints there ever was."""

    def __init__(self, api: Any, service: str, ns: str) -> None:
        self.api, self.service, self.ns = api, service, ns
        self.minimum: int | None = None
        self.samples = 0
        self._stopped = threading.Event()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        ready_by_slice: dict[str, set[str]] = {}
        discovery = client.DiscoveryV1Api(self.api)
        while not self._stopped.is_set():
            # Short watches, so that stopping never waits on a blocked read.
            for event in watch.Watch().stream(
                discovery.list_namespaced_endpoint_slice,
                self.ns,
                label_selector=f"kubernetes.io/service-name={self.service}",
                timeout_seconds=1,
            ):
                item = event["object"]
                ready = {
                    e.target_ref.name
                    for e in item.endpoints or []
                    if e.conditions and e.conditions.ready and e.target_ref
                }
                if event["type"] == "DELETED":
                    ready_by_slice.pop(item.metadata.name, None)
                else:
                    ready_by_slice[item.metadata.name] = ready
                count = len(set().union(*ready_by_slice.values()))
                self.minimum = count if self.minimum is None else min(self.minimum, count)
                self.samples += 1
                self._started.set()

    def __enter__(self) -> EndpointSampler:
        self._thread.start()
        self._started.wait(10)
        time.sleep(0.5)  # the initial listing arrives as ADDED events
        return self

    def __exit__(self, *_: object) -> None:
        self._stopped.set()
        self._thread.join(timeout=10)


def test_rollout_keeps_every_replica_serving(api_client: Any, namespace: str) -> None:
    make_config(api_client, "r", namespace)
    create_cluster(api_client, "r", namespace, image="healthsamurai/aidboxone:2509", replicas=3)
    wait_condition(api_client, "r", namespace, "Ready")
    wait_for(
        lambda: len(ready_endpoints(api_client, "r", namespace)) == 3,
        timeout=30,
        message="3 ready endpoints",
    )
    dep = client.AppsV1Api(api_client).read_namespaced_deployment("r", namespace)
    strategy = dep.spec.strategy.rolling_update
    assert (strategy.max_surge, strategy.max_unavailable) == (1, 0)
    assert dep.spec.template.spec.containers[0].startup_probe.http_get.path == "/health"
    assert dep.spec.template.spec.containers[0].lifecycle.pre_stop.sleep.seconds == 10
    assert dep.spec.template.spec.termination_grace_period_seconds == 60

    started = time.monotonic()
    with EndpointSampler(api_client, "r", namespace) as sampler:
        patch_spec(api_client, "r", namespace, {"image": "healthsamurai/aidboxone:2510"})
        wait_for(
            lambda: _rolled_out(api_client, "r", namespace, "healthsamurai/aidboxone:2510"),
            timeout=120,
            message="rollout to 2510",
        )
        wait_for(
            lambda: (
                {p.spec.containers[0].image for p in _pods(api_client, "r", namespace)}
                == {"healthsamurai/aidboxone:2510"}
            ),
            timeout=120,
            message="old pods gone",
        )
    print(
        f"\nrollout of 3 replicas: {time.monotonic() - started:.1f}s, "
        f"min ready endpoints {sampler.minimum} over {sampler.samples} watched EndpointSlice states"
    )
    assert sampler.samples > 3  # the initial state plus the rollout's changes
    assert sampler.minimum is not None and sampler.minimum >= 3


def test_stuck_rollout_is_reported_and_old_pods_keep_serving(
    api_client: Any, namespace: str
) -> None:
    make_config(api_client, "st", namespace)
    create_cluster(
        api_client,
        "st",
        namespace,
        image="healthsamurai/aidboxone:2509",
        replicas=3,
        progressDeadlineSeconds=8,
    )
    wait_condition(api_client, "st", namespace, "Ready")
    old_pods = {p.metadata.name for p in _pods(api_client, "st", namespace)}
    # The new pod template's pods never pass their readiness probe (the same release: a new
    # release that does not start is an UpgradeFailed, tests/integration/test_upgrades.py).
    patch_spec(api_client, "st", namespace, {"podLabels": {NOT_READY_LABEL: "true"}})
    body = wait_condition(
        api_client,
        "st",
        namespace,
        "Progressing",
        status="False",
        reason="ProgressDeadlineExceeded",
        timeout=60,
    )
    degraded = condition(body, "Degraded")
    assert degraded["status"] == "True" and degraded["reason"] == "RolloutStuck"
    assert "NotReady" in degraded["message"] and "old pods keep serving" in degraded["message"]
    assert body["status"]["phase"] == "Degraded"
    assert ready_endpoints(api_client, "st", namespace) == old_pods
    wait_event(api_client, "st", namespace, "RolloutStuck", "Warning")

    # Fixing the spec lets the rollout finish.
    patch_spec(api_client, "st", namespace, {"podLabels": None})
    wait_for(
        lambda: _rolled_out(api_client, "st", namespace, "healthsamurai/aidboxone:2509"),
        timeout=120,
        message="rollout after the fix",
    )


def test_config_change_rolls_pods_and_unrelated_change_does_not(
    api_client: Any, namespace: str, operator: OperatorProcess
) -> None:
    core = client.CoreV1Api(api_client)
    make_config(api_client, "cfg", namespace)
    core.create_namespaced_config_map(
        namespace,
        client.V1ConfigMap(metadata=client.V1ObjectMeta(name="unrelated"), data={"A": "1"}),
    )
    create_cluster(api_client, "cfg", namespace)
    wait_condition(api_client, "cfg", namespace, "Ready")
    assert len(_replica_sets(api_client, "cfg", namespace)) == 1

    generation = client.AppsV1Api(api_client).read_namespaced_deployment("cfg", namespace)
    generation = generation.metadata.generation
    core.patch_namespaced_config_map("unrelated", namespace, {"data": {"A": "2"}})
    # Proof that the operator has received the unrelated change: a label on the referenced
    # ConfigMap, later on the same watch, makes it read that one again (a GET) and look at the
    # cluster again (a reconcile pass), which finds nothing to do.
    gets, passes = requests("get"), reconciles()
    metrics = operator.metrics()
    core.patch_namespaced_config_map("cfg", namespace, {"metadata": {"labels": {"seen": "1"}}})
    wait_counted(operator, gets, gets(metrics), "a label on the referenced ConfigMap (read)")
    wait_counted(operator, passes, passes(metrics), "a label on the referenced ConfigMap (pass)")
    dep = client.AppsV1Api(api_client).read_namespaced_deployment("cfg", namespace)
    assert dep.metadata.generation == generation, "unrelated change rolled pods"
    assert len(_replica_sets(api_client, "cfg", namespace)) == 1, "unrelated change rolled pods"

    latencies = []
    for kind, patch in (
        (
            "ConfigMap",
            lambda: core.patch_namespaced_config_map(
                "cfg", namespace, {"data": {"BOX_ID": "changed"}}
            ),
        ),
        (
            "Secret",
            lambda: core.patch_namespaced_secret(
                "cfg", namespace, {"stringData": {"BOX_ADMIN_PASSWORD": "rotated"}}
            ),
        ),
    ):
        count = len(_replica_sets(api_client, "cfg", namespace))
        started = time.monotonic()
        patch()
        wait_for(
            lambda c=count: len(_replica_sets(api_client, "cfg", namespace)) > c,
            timeout=10,
            interval=0.02,
            message=f"new ReplicaSet after {kind} change",
        )
        latencies.append((kind, time.monotonic() - started))
    print("\nconfig change -> new ReplicaSet: " + ", ".join(f"{k} {s:.2f}s" for k, s in latencies))
    assert all(seconds < 2 for _, seconds in latencies)
    wait_condition(api_client, "cfg", namespace, "Ready")
    wait_for(
        lambda: any(
            "rolling restart" in e.message
            for e in events_for(api_client, "cfg", namespace)
            if e.reason == "Updated"
        ),
        message="rolling restart event",
    )


def test_missing_config_listed_while_running(api_client: Any, namespace: str) -> None:
    make_config(api_client, "gone", namespace)
    create_cluster(api_client, "gone", namespace)
    wait_condition(api_client, "gone", namespace, "Ready")
    image_before = (
        client.AppsV1Api(api_client)
        .read_namespaced_deployment("gone", namespace)
        .spec.template.metadata.annotations
    )
    client.CoreV1Api(api_client).delete_namespaced_config_map("gone", namespace)
    body = wait_condition(api_client, "gone", namespace, "Degraded", reason="MissingReference")
    assert body["status"]["missingReferences"] == ["ConfigMap/gone"]
    # Still serving with the pods it had, and no rollout towards a broken configuration; but
    # not Ready: a restarted pod could not start without its ConfigMap.
    assert condition(body, "Ready")["status"] == "False"
    assert condition(body, "Reconciling")["reason"] == "MissingReference"
    assert body["status"]["readyReplicas"] == 2
    after = client.AppsV1Api(api_client).read_namespaced_deployment("gone", namespace)
    assert after.spec.template.metadata.annotations == image_before


def test_disruption_budget_follows_replicas_and_blocks_drains(
    api_client: Any, namespace: str
) -> None:
    policy, core = client.PolicyV1Api(api_client), client.CoreV1Api(api_client)
    # Pods may go only to nodes carrying this test's label; taking the label away afterwards
    # leaves the running pods alone but keeps replacements Pending, as on a cluster whose
    # spare capacity is gone. (Simulated kubelets would otherwise have a replacement Ready
    # within milliseconds and free the budget again.)
    pool = f"aidbox.io/test-pool-{namespace[-6:]}"
    nodes = [n.metadata.name for n in core.list_node().items]
    for node in nodes:
        core.patch_node(node, {"metadata": {"labels": {pool: "yes"}}})
    try:
        make_config(api_client, "pdb", namespace)
        create_cluster(api_client, "pdb", namespace, replicas=3, nodeSelector={pool: "yes"})
        wait_condition(api_client, "pdb", namespace, "Ready")
    finally:
        for node in nodes:
            core.patch_node(node, {"metadata": {"labels": {pool: None}}})
    pdb = wait_for(
        lambda: policy.read_namespaced_pod_disruption_budget("pdb", namespace), message="PDB"
    )
    assert pdb.spec.max_unavailable == 1
    wait_for(
        lambda: (
            policy.read_namespaced_pod_disruption_budget(
                "pdb", namespace
            ).status.disruptions_allowed
            == 1
        ),
        timeout=30,
        message="PDB allows 1",
    )

    # Drain: evict the pods one after another, as `kubectl drain` does.
    results = []
    for pod in _pods(api_client, "pdb", namespace):
        eviction = client.V1Eviction(
            metadata=client.V1ObjectMeta(name=pod.metadata.name, namespace=namespace)
        )
        try:
            core.create_namespaced_pod_eviction(pod.metadata.name, namespace, eviction)
            results.append(201)
        except ApiException as err:
            results.append(int(err.status))
    assert results == [201, 429, 429], results

    patch_spec(api_client, "pdb", namespace, {"replicas": 1})
    wait_for(
        lambda: not policy.list_namespaced_pod_disruption_budget(namespace).items,
        timeout=10,
        message="PDB removed below 2 replicas",
    )
    patch_spec(api_client, "pdb", namespace, {"replicas": 2})
    wait_for(
        lambda: policy.list_namespaced_pod_disruption_budget(namespace).items,
        timeout=10,
        message="PDB back at 2 replicas",
    )


def test_replicas_spread_over_zones_and_single_node_is_reported(
    api_client: Any, namespace: str
) -> None:
    make_config(api_client, "z", namespace)
    create_cluster(api_client, "z", namespace, replicas=3)
    wait_condition(api_client, "z", namespace, "Ready")
    core = client.CoreV1Api(api_client)
    nodes = {n.metadata.name: n.metadata.labels for n in core.list_node().items}
    placed = [p.spec.node_name for p in _pods(api_client, "z", namespace)]
    zones = {nodes[n]["topology.kubernetes.io/zone"] for n in placed}
    assert len(zones) == 3 and len(set(placed)) == 3, placed

    node = placed[0]
    make_config(api_client, "one", namespace)
    create_cluster(
        api_client, "one", namespace, replicas=2, nodeSelector={"kubernetes.io/hostname": node}
    )
    body = wait_condition(api_client, "one", namespace, "Degraded", reason="SingleNode")
    assert node in condition(body, "Degraded")["message"]
    assert condition(body, "Ready")["status"] == "True"
    wait_event(api_client, "one", namespace, "SingleNode", "Warning")


def _secret_data(api: Any, name: str, ns: str) -> dict[str, str]:
    secret = client.CoreV1Api(api).read_namespaced_secret(name, ns)
    return {k: base64.b64decode(v).decode() for k, v in (secret.data or {}).items()}


def test_shared_jwt_keys_created_once_and_kept(
    api_client: Any, namespace: str, operator: OperatorProcess
) -> None:
    make_config(api_client, "jwt", namespace)
    create_cluster(api_client, "jwt", namespace)
    wait_condition(api_client, "jwt", namespace, "Ready")
    core = client.CoreV1Api(api_client)
    secret = core.read_namespaced_secret("jwt-auth-keys", namespace)
    assert secret.metadata.owner_references[0].name == "jwt"
    data = _secret_data(api_client, "jwt-auth-keys", namespace)
    private = load_pem_private_key(data["BOX_SECURITY_AUTH_KEYS_PRIVATE"].encode(), None)
    public = load_pem_public_key(data["BOX_SECURITY_AUTH_KEYS_PUBLIC"].encode())
    assert isinstance(private, rsa.RSAPrivateKey) and private.key_size == 2048
    assert private.public_key().public_numbers() == public.public_numbers()  # type: ignore[union-attr]
    assert len(data["BOX_SECURITY_AUTH_KEYS_SECRET"].encode()) > 32
    env = (
        client.AppsV1Api(api_client)
        .read_namespaced_deployment("jwt", namespace)
        .spec.template.spec.containers[0]
        .env
    )
    refs = {
        e.name: e.value_from.secret_key_ref.name
        for e in env
        if e.value_from and e.value_from.secret_key_ref
    }
    assert refs == {k: "jwt-auth-keys" for k in data}
    version = secret.metadata.resource_version

    # Reconciles (scale, edits) and an operator restart leave the keys alone.
    patch_spec(api_client, "jwt", namespace, {"replicas": 3})
    wait_condition(api_client, "jwt", namespace, "Ready")
    operator.restart()
    patch_spec(api_client, "jwt", namespace, {"replicas": 2})
    wait_for(
        lambda: get_cluster(api_client, "jwt", namespace)["status"]["ready"] == "2/2",
        timeout=60,
        message="2/2 after restart",
    )
    assert (
        core.read_namespaced_secret("jwt-auth-keys", namespace).metadata.resource_version == version
    )

    # Key material appears nowhere else.
    pem_body = data["BOX_SECURITY_AUTH_KEYS_PRIVATE"].splitlines()[1]
    shared = data["BOX_SECURITY_AUTH_KEYS_SECRET"]
    texts = [operator.log_text(), str(get_cluster(api_client, "jwt", namespace)["status"])]
    texts += [f"{e.reason} {e.message}" for e in events_for(api_client, "jwt", namespace)]
    for text in texts:
        assert pem_body not in text and shared not in text


def test_user_supplied_keys_are_used_and_multibox_gets_cluster_secret(
    api_client: Any, namespace: str
) -> None:
    make_config(
        api_client,
        "own",
        namespace,
        secret={
            "BOX_SECURITY_AUTH_KEYS_PRIVATE": "user-private",
            "BOX_SECURITY_AUTH_KEYS_PUBLIC": "p",
            "BOX_SECURITY_AUTH_KEYS_SECRET": "s" * 40,
        },
    )
    create_cluster(api_client, "own", namespace)
    wait_condition(api_client, "own", namespace, "Ready")
    core = client.CoreV1Api(api_client)
    with pytest.raises(ApiException) as missing:
        core.read_namespaced_secret("own-auth-keys", namespace)
    assert missing.value.status == 404
    env = (
        client.AppsV1Api(api_client)
        .read_namespaced_deployment("own", namespace)
        .spec.template.spec.containers[0]
        .env
        or []
    )
    assert not [e for e in env if e.name.startswith("BOX_SECURITY_AUTH_KEYS")]

    make_config(api_client, "mb", namespace)
    create_cluster(api_client, "mb", namespace, image="healthsamurai/multibox:2510")
    wait_condition(api_client, "mb", namespace, "Ready")
    data = _secret_data(api_client, "mb-auth-keys", namespace)
    assert set(data) == {
        "BOX_SECURITY_AUTH_KEYS_PRIVATE",
        "BOX_SECURITY_AUTH_KEYS_PUBLIC",
        "BOX_SECURITY_AUTH_KEYS_SECRET",
        "AIDBOX_CLUSTER_SECRET",
    }
