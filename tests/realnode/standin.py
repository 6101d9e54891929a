"""AidboxCluster specs that run the Aidbox stand-in on the real nodes, and waiting helpers."""

from __future__ import annotations

import time
from typing import Any

from kubernetes import client

from aidbox_sandbox.images import standin_image
from aidbox_sandbox.nodeconfig import REAL_NODE_LABEL
from helpers import wait_for

OLD, NEW = "2510.1", "2510.2"
NO_DATABASE = {"name": "STANDIN_DATABASE", "value": "none"}
SELECTOR = "app.kubernetes.io/instance={name}"


def standin_spec(replicas: int = 3, **overrides: Any) -> dict[str, Any]:
    """Product defaults (preStop, surge 1 / unavailable 0, PDB) with the stand-in image and
    probes quick enough for tests."""
    spec: dict[str, Any] = {
        "image": standin_image(OLD),
        "imagePullPolicy": "Never",
        "replicas": replicas,
        "nodeSelector": {REAL_NODE_LABEL: "true"},
        "tolerations": [{"key": REAL_NODE_LABEL, "operator": "Exists", "effect": "NoSchedule"}],
        "startupProbe": {"periodSeconds": 1, "failureThreshold": 60},
        "readinessProbe": {"initialDelaySeconds": 1, "periodSeconds": 1},
        "livenessProbe": {"initialDelaySeconds": 5, "periodSeconds": 2},
        # The stand-in is a small Go server, not a JVM: the default requests (cpu 500m each)
        # would not fit a rollout's pods on two nodes sharing this machine's two cores.
        "resources": {"requests": {"cpu": "50m", "memory": "32Mi"}, "limits": {"memory": "256Mi"}},
        # Like Aidbox the stand-in needs its database; these tests are about other things.
        "env": [NO_DATABASE],
    }
    env = [*spec["env"], *overrides.pop("env", [])]
    spec.update(overrides)
    spec["env"] = env
    return spec


def pods(api: client.ApiClient, name: str, namespace: str) -> list[client.V1Pod]:
    found = client.CoreV1Api(api).list_namespaced_pod(
        namespace, label_selector=SELECTOR.format(name=name)
    )
    return list(found.items)


def _ready(pod: client.V1Pod) -> bool:
    conds = pod.status.conditions or []
    return any(c.type == "Ready" and c.status == "True" for c in conds)


def settled(
    api: client.ApiClient, name: str, namespace: str, replicas: int, image: str | None = None
) -> bool:
    """Exactly `replicas` pods, all Ready, none terminating, all of one template (and image)."""
    found = pods(api, name, namespace)
    if len(found) != replicas or any(p.metadata.deletion_timestamp for p in found):
        return False
    if not all(_ready(p) for p in found):
        return False
    hashes = {p.metadata.labels.get("pod-template-hash") for p in found}
    images = {p.spec.containers[0].image for p in found}
    return len(hashes) == 1 and (image is None or images == {image})


def wait_settled(
    api: client.ApiClient,
    name: str,
    namespace: str,
    replicas: int,
    image: str | None = None,
    timeout: float = 180,
) -> None:
    wait_for(
        lambda: settled(api, name, namespace, replicas, image),
        timeout=timeout,
        interval=0.5,
        message=f"{replicas} settled pods of {namespace}/{name}",
    )


def template_hash(api: client.ApiClient, name: str, namespace: str) -> str:
    dep = client.AppsV1Api(api).read_namespaced_deployment(name, namespace)
    return str(dep.metadata.generation)


def evict_all_from(api: client.ApiClient, name: str, namespace: str, node: str) -> int:
    """Drain one cluster's pods from `node` through the Eviction API (the PDB decides when),
    as `kubectl drain` does. Returns how many evictions the PDB refused on the way."""
    refused = 0
    deadline = time.monotonic() + 180
    while True:
        left = [
            p
            for p in pods(api, name, namespace)
            if p.spec.node_name == node and not p.metadata.deletion_timestamp
        ]
        if not left:
            return refused
        assert time.monotonic() < deadline, f"could not evict {[p.metadata.name for p in left]}"
        for pod in left:
            if not evict(api, namespace, pod.metadata.name):
                refused += 1
        time.sleep(1)


def evict(api: client.ApiClient, namespace: str, pod: str) -> bool:
    """One eviction through the Eviction API: False when the PDB refused it (429)."""
    body = client.V1Eviction(metadata=client.V1ObjectMeta(name=pod, namespace=namespace))
    try:
        client.CoreV1Api(api).create_namespaced_pod_eviction(pod, namespace, body)
    except client.ApiException as exc:
        if exc.status != 429:  # 429: the PDB allows no disruption right now
            raise
        return False
    return True
