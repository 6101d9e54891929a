"""`kubectl aidbox` against the sandbox, run as the installed `kubectl-aidbox` command (what
kubectl runs for `kubectl aidbox`), with the session operator doing what it asks."""

from __future__ import annotations

import base64
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from helpers import wait_for
from kube_helpers import condition, create_cluster, get_cluster, make_config, wait_condition
from operator_process import OperatorProcess

PLUGIN = Path(sys.executable).parent / "kubectl-aidbox"
IMAGE = "healthsamurai/aidboxone:2510.1"


def _run(kubeconfig: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(PLUGIN), "--kubeconfig", str(kubeconfig), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if ok:
        assert done.returncode == 0, done.stderr
    return done


def _pods(api: Any, ns: str, name: str) -> set[str]:
    pods = client.CoreV1Api(api).list_namespaced_pod(
        ns, label_selector=f"app.kubernetes.io/instance={name}"
    )
    return {p.metadata.uid for p in pods.items if not p.metadata.deletion_timestamp}


def _ready_cluster(api: Any, ns: str, name: str) -> None:
    make_config(api, name, ns, secret={"BOX_ADMIN_PASSWORD": "plugin-test-pw-1"})
    create_cluster(api, name, ns, image=IMAGE, replicas=2)
    wait_condition(api, name, ns, "Ready", timeout=90)


@pytest.mark.usefixtures("operator")
def test_status_versions_pause_and_resume(
    api_client: Any, namespace: str, sandbox_kubeconfig: Path
) -> None:
    _ready_cluster(api_client, namespace, "fhir")
    lines = _run(sandbox_kubeconfig, "-n", namespace, "status").stdout.splitlines()
    assert lines[0].split() == ["NAMESPACE", "NAME", "READY", "PHASE", "RELEASES", "URL", "REASON"]
    assert lines[1].split() == [
        namespace,
        "fhir",
        "2/2",
        "Ready",
        "2510.1",
        f"http://fhir.{namespace}.svc:8080",
        "-",
    ]
    everywhere = _run(sandbox_kubeconfig, "status", "-A").stdout
    assert f"{namespace}   fhir" in everywhere
    versions = _run(sandbox_kubeconfig, "-n", namespace, "versions").stdout.splitlines()
    assert versions[1].split()[0] == "2510.1" and versions[1].split()[2] == f"{namespace}/fhir"

    _run(sandbox_kubeconfig, "-n", namespace, "pause", "fhir")
    # Nothing is held, so the cluster stays Ready; Progressing says it is paused.
    wait_condition(api_client, "fhir", namespace, "Progressing", "False", "Paused", timeout=30)
    paused = _run(sandbox_kubeconfig, "-n", namespace, "status", "fhir").stdout.splitlines()
    assert paused[1].split()[3:] == [
        "Ready",
        "2510.1",
        f"http://fhir.{namespace}.svc:8080",
        "Paused",
    ]
    _run(sandbox_kubeconfig, "-n", namespace, "resume", "fhir")
    wait_for(
        lambda: (
            condition(get_cluster(api_client, "fhir", namespace), "Progressing").get("reason")
            != "Paused"
        ),
        timeout=30,
        message="fhir no longer paused",
    )
    annotations = get_cluster(api_client, "fhir", namespace)["metadata"].get("annotations") or {}
    assert "aidbox.io/paused" not in annotations

    missing = _run(sandbox_kubeconfig, "-n", namespace, "pause", "nosuch", ok=False)
    assert missing.returncode == 1
    assert missing.stderr.strip() == f"error: AidboxCluster {namespace}/nosuch not found"


@pytest.mark.usefixtures("operator")
def test_restart_replaces_every_pod_once_and_is_recorded(
    api_client: Any, namespace: str, sandbox_kubeconfig: Path
) -> None:
    _ready_cluster(api_client, namespace, "fhir")
    before = _pods(api_client, namespace, "fhir")
    assert len(before) == 2
    _run(sandbox_kubeconfig, "-n", namespace, "restart", "fhir")
    body = get_cluster(api_client, "fhir", namespace)
    asked = body["metadata"]["annotations"]["aidbox.io/restart"]

    def restarted() -> bool:
        status = get_cluster(api_client, "fhir", namespace).get("status") or {}
        now = _pods(api_client, namespace, "fhir")
        return (
            status.get("restartedAt") == asked
            and status.get("phase") == "Ready"
            and len(now) == 2
            and not now & before
        )

    wait_for(restarted, timeout=90, interval=0.5, message="every pod replaced, restart recorded")
    events = client.CoreV1Api(api_client).list_namespaced_event(
        namespace, field_selector="involvedObject.name=fhir,involvedObject.kind=AidboxCluster"
    )
    assert any(f"restart requested at {asked}" in (e.message or "") for e in events.items)


def test_report_holds_the_cluster_and_no_secret_value(
    api_client: Any,
    namespace: str,
    sandbox_kubeconfig: Path,
    operator: OperatorProcess,
    tmp_path: Path,
) -> None:
    _ready_cluster(api_client, namespace, "fhir")
    bundle = tmp_path / "bundle.tar.gz"
    args = ("-n", namespace, "report", "fhir", "-o", str(bundle))
    _run(sandbox_kubeconfig, *args, "--operator-log", str(operator.log_path))
    with tarfile.open(bundle) as tar:
        files = {
            Path(m.name).name: tar.extractfile(m).read().decode()  # type: ignore[union-attr]
            for m in tar.getmembers()
        }
    assert set(files) == {
        "README.txt",
        "cluster.yaml",
        "children.yaml",
        "pods.yaml",
        "events.yaml",
        "operator.log",
    }
    assert (
        "kind: Deployment" in files["children.yaml"] and "fhir-auth-keys" in files["children.yaml"]
    )
    assert files["pods.yaml"].count("kind: Pod") == 2
    assert "ClusterReady" in files["events.yaml"]
    assert f"[{namespace}/fhir]" in files["operator.log"]
    core = client.CoreV1Api(api_client)
    values = [
        *core.read_namespaced_secret("fhir-auth-keys", namespace).data.values(),
        *core.read_namespaced_secret("fhir", namespace).data.values(),
    ]
    text = "\n".join(files.values())
    for encoded in values:
        decoded = base64.b64decode(encoded).decode()
        long_lines = [line for line in decoded.splitlines() if len(line) > 20]
        for needle in (encoded, decoded.strip(), *long_lines):
            assert needle not in text, "a Secret value is in the bundle"
    assert "plugin-test-pw-1" not in text
