"""The sandbox's OCI registry with real nodes: it listens on loopback only, a stand-in release
pushed as repo:tag is pulled by a real node's containerd, a moved tag yields another digest,
and a release built to fail at start exits with its termination message."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from aidbox_sandbox.nodeconfig import REAL_NODE_LABEL
from aidbox_sandbox.realnode import REGISTRY_RELAY, RealNodes
from aidbox_sandbox.registry import Registry
from helpers import sandbox_progress, wait_for

REPOSITORY = "aidbox"
FAILURE = 'migration 2510.3 failed: column "resource" of relation "patient" does not exist'


@pytest.fixture(scope="module")
def registry(sandbox: Any, real_nodes: RealNodes, request: pytest.FixtureRequest) -> Iterator[Any]:
    progress = sandbox_progress(request)
    with sandbox.registry_session(progress) as reg:
        yield reg


def _listening(pid: int) -> list[str]:
    """host:port of every TCP socket in LISTEN state that process `pid` holds (its netns)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        match = re.fullmatch(r"socket:\[(\d+)\]", os.readlink(fd))
        if match:
            inodes.add(match.group(1))
    found = []
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                address, port = fields[1].split(":")
                if table == "tcp":
                    host = ".".join(str(int(address[i : i + 2], 16)) for i in (6, 4, 2, 0))
                else:
                    host = f"[{address}]"
                found.append(f"{host}:{int(port, 16)}")
    return found


def _pod(name: str, image: str, **env: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "nodeSelector": {REAL_NODE_LABEL: "true"},
            "tolerations": [{"key": REAL_NODE_LABEL, "operator": "Exists", "effect": "NoSchedule"}],
            "terminationGracePeriodSeconds": 1,
            "containers": [
                {
                    "name": "aidbox",
                    "image": image,
                    "imagePullPolicy": "Always",
                    "env": [
                        {"name": k, "value": v}
                        for k, v in {"STANDIN_DATABASE": "none", **env}.items()
                    ],
                }
            ],
        },
    }


def _status(api: client.ApiClient, namespace: str, name: str) -> Any:
    pod = client.CoreV1Api(api).read_namespaced_pod(name, namespace)
    statuses = pod.status.container_statuses or []
    return pod, (statuses[0] if statuses else None)


def _run_pod(api: client.ApiClient, namespace: str, name: str, image: str) -> Any:
    """Create a pod of `image` on a real node, wait until its container runs; its status."""
    client.CoreV1Api(api).create_namespaced_pod(namespace, _pod(name, image))

    def running() -> bool:
        pod, status = _status(api, namespace, name)
        return pod.status.phase == "Running" and status is not None and bool(status.state.running)

    wait_for(running, timeout=120, interval=0.5, message=f"pod {name} running ({image})")
    return _status(api, namespace, name)


def test_registry_listens_on_loopback_only(registry: Registry, real_nodes: RealNodes) -> None:
    assert registry.pid is not None
    assert _listening(registry.pid) == [registry.host]
    relays = {
        p["name"]: p["pid"]
        for p in real_nodes._state()["processes"]
        if p["name"].endswith(REGISTRY_RELAY)
    }
    # The host's relay listens on a unix socket only; each node's on its netns' loopback only.
    assert _listening(relays.pop(f"realnode-{REGISTRY_RELAY}")) == []
    assert sorted(relays) == [f"{name}-{REGISTRY_RELAY}" for name in real_nodes.names()]
    for pid in relays.values():
        assert _listening(pid) == [registry.host]


def test_real_node_pulls_a_pushed_release(
    registry: Registry, real_nodes: RealNodes, api_client: client.ApiClient, namespace: str
) -> None:
    digest = registry.push_standin("2510.1")
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest)
    assert registry.digest(REPOSITORY, "2510.1") == digest
    assert "2510.1" in registry.tags(REPOSITORY)
    image = registry.reference(REPOSITORY, "2510.1")
    assert image == f"127.0.0.1:{registry.port}/aidbox:2510.1"
    pod, status = _run_pod(api_client, namespace, "pulled", image)
    assert pod.spec.node_name in real_nodes.names()
    assert status.image_id.endswith(f"@{digest}"), status.image_id


def test_moving_a_tag_yields_another_digest(
    registry: Registry, real_nodes: RealNodes, api_client: client.ApiClient, namespace: str
) -> None:
    first = registry.push_standin("2510.1")
    moved = registry.push_standin("2510.1", version="2510.2")
    assert moved != first
    assert registry.digest(REPOSITORY, "2510.1") == moved
    # A node pulling the tag now gets the other build: its image and its version.
    pod, status = _run_pod(api_client, namespace, "moved", registry.reference(REPOSITORY, "2510.1"))
    assert status.image_id.endswith(f"@{moved}"), status.image_id
    log = real_nodes.pod_log(pod.spec.node_name, namespace, "moved", pod.metadata.uid, "aidbox")
    assert "aidbox stand-in 2510.2 starting" in log
    # Moving it back: the registry names the first build again.
    assert registry.push_standin("2510.1") == first
    assert registry.digest(REPOSITORY, "2510.1") == first


def test_failing_release_reports_its_termination_message(
    registry: Registry, api_client: client.ApiClient, namespace: str
) -> None:
    digest = registry.push_standin("2510.3", fail_start=FAILURE)
    assert digest != registry.push_standin("2510.3-ok", version="2510.3")
    image = registry.reference(REPOSITORY, "2510.3")
    # Nothing in the pod's environment turns the failure off: it is compiled into the release.
    pod = _pod("failing", image, STANDIN_STARTUP_SECONDS="1")
    client.CoreV1Api(api_client).create_namespaced_pod(namespace, pod)
    started = time.monotonic()

    def terminated() -> Any:
        _, status = _status(api_client, namespace, "failing")
        return status.last_state.terminated if status and status.last_state else None

    last = wait_for(terminated, timeout=120, interval=0.5, message="a terminated container")
    assert last.exit_code == 1
    assert last.message == FAILURE
    assert last.reason == "Error"
    assert time.monotonic() - started >= 1
    _, status = _status(api_client, namespace, "failing")
    assert status.restart_count >= 1
    assert status.image_id.endswith(f"@{digest}"), status.image_id
