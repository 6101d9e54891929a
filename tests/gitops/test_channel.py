"""A release channel moved by a commit. One repository holds an AidboxReleaseChannel (folder
channel/) and two clusters on it, the canary (canary/) and one of the rest (rest/), each folder
synced by a Kustomization of its own, as teams owning clusters would have. A commit moving the
channel reaches the canary's wave first, then the rest; a commit moving it to a release whose
pods fail at start halts the channel at the canary: the canary's Kustomization fails naming its
cluster, the channel's names the channel, and the rest's stays Ready with its pods untouched."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from channels import BROKEN, REPO, channel_status, delete_channel
from helpers import wait_for
from kube_helpers import condition
from operator_process import OperatorProcess

from .flux_objects import GROUP, VERSION, GitOps

TIERS = {"c1": "canary", "p1": "rest"}


def _cluster_files(name: str, tier: str, channel: str) -> str:
    documents: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {}},
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name},
            "stringData": {"BOX_ADMIN_PASSWORD": "test-only-password"},
        },
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "AidboxCluster",
            "metadata": {"name": name, "labels": {"tier": tier}},
            "spec": {"channel": channel, "replicas": 2},
        },
    ]
    return yaml.safe_dump_all(documents, sort_keys=False)


def _files(channel: str, image: str) -> dict[str, str]:
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "AidboxReleaseChannel",
        "metadata": {"name": channel},
        "spec": {
            "image": image,
            "waves": [{"name": "canary", "matchLabels": {"tier": "canary"}}, {"name": "rest"}],
        },
    }
    files = {"channel/channel.yaml": yaml.safe_dump(body, sort_keys=False)}
    for name, tier in TIERS.items():
        files[f"{tier}/aidbox.yaml"] = _cluster_files(name, tier, channel)
    return files


@pytest.fixture
def channel(
    api_client: Any, own_namespace: str, operator_credentials: Path, tmp_path: Path
) -> Iterator[str]:
    """An operator handling release channels for this test's namespace, and a channel name."""
    op = OperatorProcess(
        operator_credentials,
        tmp_path / "operator.log",
        ("--namespace", own_namespace, "--release-channels=on"),
    )
    op.start()
    name = f"gc-{secrets.token_hex(3)}"
    try:
        yield name
    finally:
        op.stop()
        delete_channel(api_client, name)


def _image(api: Any, ns: str, cluster: str) -> str:
    dep = client.AppsV1Api(api).read_namespaced_deployment(cluster, ns)
    return str(dep.spec.template.spec.containers[0].image)


def _pods(api: Any, ns: str, cluster: str) -> set[str]:
    pods = client.CoreV1Api(api).list_namespaced_pod(
        ns, label_selector=f"app.kubernetes.io/instance={cluster}"
    )
    return {p.metadata.uid for p in pods.items}


def test_a_channel_moved_in_git_proceeds_by_waves_and_a_halt_shows(
    api_client: Any, flux: Any, own_namespace: str, channel: str
) -> None:
    ns = own_namespace
    first = GitOps(api_client, flux, ns, "60s", name="channel", path="./channel", target=False)
    first.commit(_files(channel, f"{REPO}:2510.1"), "a channel on 2510.1 and two clusters")
    syncs = [first] + [
        GitOps(api_client, flux, ns, "60s", name=tier, path=f"./{tier}", repo=first.repo)
        for tier in TIERS.values()
    ]
    revision = first.revision()
    for gitops in syncs:
        gitops.start()
    for gitops in syncs:
        gitops.wait_applied(revision)

    # A good release: the canary's wave first, then the rest.
    revision = first.commit(_files(channel, f"{REPO}:2510.2"), "move the channel to 2510.2")
    order: list[str] = []

    def moved() -> bool:
        for cluster in TIERS:
            if cluster not in order and _image(api_client, ns, cluster).endswith(":2510.2"):
                order.append(cluster)
        return all(gitops.applied(revision) for gitops in syncs)

    wait_for(moved, timeout=180, interval=0.2, message="every Kustomization Ready on 2510.2")
    assert order == ["c1", "p1"], order
    assert channel_status(api_client, channel)["phase"] == "Complete"

    # A release whose pods fail at start: the channel halts in the canary's wave.
    untouched = _pods(api_client, ns, "p1")
    revision = first.commit(_files(channel, BROKEN), "move the channel to a broken release")
    canary, rest = syncs[1], syncs[2]
    body = wait_for(
        lambda: canary.failed(revision),
        timeout=120,
        interval=0.5,
        message="the canary's Kustomization failing",
    )
    message = condition(body, "Ready")["message"]
    assert f"AidboxCluster/{ns}/c1 status: 'Failed'" in message, message
    channel_failed = wait_for(lambda: first.failed(revision), timeout=60, message="channel fails")
    channel_message = condition(channel_failed, "Ready")["message"]
    assert f"AidboxReleaseChannel/{channel} status: 'Failed'" in channel_message, channel_message
    assert channel_status(api_client, channel)["phase"] == "Halted"
    rest.wait_applied(revision, timeout=60)
    assert _image(api_client, ns, "p1").endswith(":2510.2")
    assert _pods(api_client, ns, "p1") == untouched
    print(f"\nwave order {order}; halt seen by the canary's Kustomization: {message}")
