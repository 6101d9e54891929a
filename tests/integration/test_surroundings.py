"""Issue 12 on a real API server: what the operator receives does not grow with the unrelated
objects around it, and its informers follow the API's list/watch rules."""

from __future__ import annotations

import asyncio
import base64
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from kubernetes import client
from kubernetes.client.rest import ApiException

from aidbox_operator.model.constants import FIELD_MANAGER
from aidbox_operator.runtime.client import connect
from aidbox_operator.runtime.informer import Informer, Key, Scope
from aidbox_operator.runtime.kinds import CONFIGMAPS
from aidbox_sandbox.operator import received_since, tcp_received
from helpers import wait_for
from kube_helpers import create_cluster, get_cluster, make_config, wait_condition
from operator_process import OperatorProcess, reconciles, requests, wait_counted, wait_quiet

RECEIVED = "aidbox_operator_api_received_bytes_total"
# 8 Secrets + 8 ConfigMaps of 512 KB and 10 pods with 100 KB of annotations: ~12 MB on the wire
# for a client that watches them in full (several events per pod).
BIG = 512 * 1024


def _namespace(api: Any, name: str) -> None:
    core = client.CoreV1Api(api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    wait_for(lambda: core.read_namespaced_service_account("default", name), timeout=30)


def _unrelated(api: Any, namespace: str) -> None:
    core = client.CoreV1Api(api)
    blob = base64.b64encode(os.urandom(BIG * 3 // 4)).decode()
    for i in range(8):
        meta = client.V1ObjectMeta(name=f"release-{i}", labels={"owner": "helm"})
        core.create_namespaced_secret(namespace, client.V1Secret(metadata=meta, data={"r": blob}))
        meta = client.V1ObjectMeta(name=f"settings-{i}")
        core.create_namespaced_config_map(
            namespace, client.V1ConfigMap(metadata=meta, data={"s": blob})
        )
    note = "x" * (100 * 1024)
    for i in range(10):
        pod = client.V1Pod(
            metadata=client.V1ObjectMeta(name=f"app-{i}", annotations={"example.com/n": note}),
            spec=client.V1PodSpec(containers=[client.V1Container(name="a", image="a:1")]),
        )
        core.create_namespaced_pod(namespace, pod)
    wait_for(
        lambda: all(p.status.phase == "Running" for p in core.list_namespaced_pod(namespace).items),
        timeout=60,
        message="the unrelated pods Running",
    )


def _seen_after(api: Any, op: OperatorProcess, namespace: str, name: str) -> None:
    """Proof that the operator's watches have passed everything made before: one small change
    per watched kind, later on the same cluster-wide watch, each seen by the operator. A label
    on the cluster's ConfigMap and Secret makes it read them again (GETs); an annotation on one
    of its pods makes it reconcile. The unrelated objects came earlier on those watches, so
    whatever of them the API server sends has arrived by then."""
    core = client.CoreV1Api(api)
    gets, passes = requests("get"), reconciles()
    metrics = op.metrics()
    label = {"metadata": {"labels": {"example.com/seen": "1"}}}
    core.patch_namespaced_config_map(name, namespace, label)
    core.patch_namespaced_secret(name, namespace, label)
    pod = core.list_namespaced_pod(namespace, label_selector=f"app.kubernetes.io/instance={name}")
    core.patch_namespaced_pod(
        pod.items[0].metadata.name,
        namespace,
        {"metadata": {"annotations": {"example.com/seen": "1"}}},
    )
    wait_counted(op, gets, gets(metrics), "labels on the ConfigMap and Secret", more=2)
    wait_counted(op, passes, passes(metrics), "an annotation on one of the pods")


def test_unrelated_objects_cost_the_operator_no_traffic(
    api_client: Any, own_namespace: str, operator_credentials: Path, tmp_path: Path
) -> None:
    namespace, other = own_namespace, f"{own_namespace}-unrelated"
    port = urlparse(api_client.configuration.host).port or 443
    # A glob: one cluster-wide watch per kind, filtered by the operator, so the unrelated
    # namespace is in what the API server sends (the default install watches all namespaces).
    op = OperatorProcess(
        operator_credentials, tmp_path / "op.log", ("--namespace", f"{namespace}*")
    )
    _namespace(api_client, other)
    op.start()
    try:
        make_config(api_client, "c", namespace)
        create_cluster(api_client, "c", namespace)
        wait_condition(api_client, "c", namespace, "Ready")
        wait_quiet(op)
        assert op.proc is not None
        before = tcp_received(op.proc.pid, port)
        _unrelated(api_client, other)
        _seen_after(api_client, op, namespace, "c")
        received = received_since(before, tcp_received(op.proc.pid, port))
        assert received < 1_000_000, f"{received} bytes for ~12 MB of unrelated objects"

        # A restart with them present: everything it lists is small, and nothing is written.
        op.restart()
        wait_for(
            lambda: (
                op.metrics().get("aidbox_operator_queue_depth", 1) == 0
                and op.metrics().get('aidbox_operator_reconciles_total{result="success"}', 0) >= 1
            ),
            timeout=60,
            message="the restarted operator in sync",
        )
        wait_quiet(op)
        assert op.proc is not None
        started = received_since({}, tcp_received(op.proc.pid, port))
        assert started < 1_000_000, f"{started} bytes received at start"
        assert op.metrics()[RECEIVED] < 500_000
        assert op.writes() == 0
        assert get_cluster(api_client, "c", namespace)["status"]["phase"] == "Ready"
    finally:
        op.stop()
        try:
            client.CoreV1Api(api_client).delete_namespace(other)
        except ApiException as exc:
            if exc.status != 404:
                raise


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.relists: list[set[Key]] = []

    def event(self, event_type: str, body: dict[str, Any]) -> None:
        self.events.append((event_type, body))

    def relisted(self, scope: Scope, present: set[Key], resource_version: str) -> None:
        self.relists.append(present)

    def names(self, event_type: str) -> list[str]:
        return [b["metadata"]["name"] for t, b in self.events if t == event_type]


async def _until(predicate: Any) -> None:
    async with asyncio.timeout(20):
        while not predicate():  # noqa: ASYNC110 (a list another task fills)
            await asyncio.sleep(0.05)


async def test_informer_lists_watches_by_label_and_metadata_only(
    api_client: Any, own_namespace: str, sandbox_kubeconfig: Path
) -> None:
    core = client.CoreV1Api(api_client)
    kube = await connect(FIELD_MANAGER, str(sandbox_kubeconfig))
    for name, labels in (("before", {"pick": "me"}), ("ignored", {})):
        meta = client.V1ObjectMeta(name=name, labels=labels)
        core.create_namespaced_config_map(
            own_namespace, client.V1ConfigMap(metadata=meta, data={"k": "v"})
        )
    feed = Recorder()
    informer = Informer(
        kube,
        CONFIGMAPS,
        Scope(own_namespace),
        feed,
        label_selector="pick=me",
        metadata_only=True,
        page_size=1,  # one object per page: the continue token is followed
    )
    task = asyncio.create_task(informer.run())
    try:
        await asyncio.wait_for(informer.synced.wait(), 20)
        assert feed.names("ADDED") == ["before"]
        assert feed.relists == [{(own_namespace, "before")}]
        meta = client.V1ObjectMeta(name="after", labels={"pick": "me"})
        core.create_namespaced_config_map(
            own_namespace, client.V1ConfigMap(metadata=meta, data={"k": "v"})
        )
        core.patch_namespaced_config_map("before", own_namespace, {"data": {"k": "w"}})
        core.delete_namespaced_config_map("before", own_namespace)
        await _until(lambda: "before" in feed.names("DELETED"))
        assert feed.names("ADDED") == ["before", "after"]
        assert feed.names("MODIFIED") == ["before"]
        # Metadata only: no data ever reaches the operator.
        assert all("data" not in body for _, body in feed.events)
        assert all(body["kind"] == "ConfigMap" for _, body in feed.events)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await kube.close()
