from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import yaml

from aidbox_operator.cli import main
from aidbox_operator.logs import JsonFormatter

REPO = Path(__file__).resolve().parents[2]


def test_render_prints_what_the_operator_applies(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["render", "-f", str(REPO / "examples" / "ha.yaml")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# What aidbox-operator applies") and "placeholders" in out
    docs = list(yaml.safe_load_all(out))
    kinds = [d["kind"] for d in docs]
    assert kinds == ["Secret", "Deployment", "Service", "PodDisruptionBudget"]
    secret, deployment = docs[0], docs[1]
    assert secret["metadata"]["name"] == "fhir-auth-keys"
    assert all(v.startswith("<generated") for v in secret["stringData"].values())
    assert deployment["spec"]["replicas"] == 3
    template = deployment["spec"]["template"]
    container = template["spec"]["containers"][0]
    assert container["image"] == "healthsamurai/aidboxone:2510"
    # Everything the operator adds is there: keys from its Secret, the config hash, owners,
    # and the applied-hash annotation it compares against.
    keys_env = {e["name"] for e in container["env"] if "secretKeyRef" in e.get("valueFrom", {})}
    assert keys_env == set(secret["stringData"])
    assert template["metadata"]["annotations"]["aidbox.io/config-hash"].startswith("<")
    for doc in docs:
        assert doc["metadata"]["ownerReferences"][0]["uid"].startswith("<")
    for doc in docs[1:]:
        assert "aidbox.io/applied-hash" in doc["metadata"]["annotations"]


def test_render_names_the_bad_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: aidbox.io/v1alpha1\nkind: AidboxCluster\n"
        "metadata: {name: x}\nspec: {replicas: -1, imagePullPolicy: Sometimes}\n"
    )
    with pytest.raises(SystemExit) as raised:
        main(["render", "-f", str(bad)])
    message = str(raised.value)
    assert "AidboxCluster x is invalid" in message
    assert "replicas" in message and "imagePullPolicy" in message


def test_crd_check_detects_a_stale_file(tmp_path: Path) -> None:
    stale = tmp_path / "crd.yaml"
    stale.write_text("old")
    assert main(["crd", "--check", str(stale)]) == 1
    assert main(["crd", "--check", str(REPO / "crds" / "aidboxcluster.yaml")]) == 0


def test_json_logs_carry_the_cluster() -> None:
    record = logging.LogRecord(
        "aidbox_operator",
        logging.WARNING,
        __file__,
        1,
        "%s: %s",
        ("MissingReference", "ConfigMap/a not found"),
        None,
    )
    record.namespace, record.cluster = "prod", "fhir"
    entry = json.loads(JsonFormatter().format(record))
    assert (
        entry["level"] == "warning" and entry["namespace"] == "prod" and entry["cluster"] == "fhir"
    )
    assert entry["message"] == "MissingReference: ConfigMap/a not found"


def test_render_takes_a_clusters_image_from_its_channel_in_the_file(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["render", "-f", str(REPO / "examples" / "channel.yaml")]) == 0
    images = {line.strip() for line in capsys.readouterr().out.splitlines() if "image:" in line}
    assert images == {"image: healthsamurai/aidboxone:2510.2"}


def test_render_refuses_a_channel_that_is_not_in_the_file(tmp_path: Path) -> None:
    manifest = tmp_path / "c.yaml"
    manifest.write_text(
        "apiVersion: aidbox.io/v1alpha1\nkind: AidboxCluster\nmetadata: {name: a}\n"
        "spec: {channel: elsewhere}\n"
    )
    with pytest.raises(SystemExit, match="on channel elsewhere, which is not in this file"):
        main(["render", "-f", str(manifest)])


def test_render_of_the_production_example(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["render", "-f", str(REPO / "examples" / "production.yaml")]) == 0
    docs = list(yaml.safe_load_all(capsys.readouterr().out))
    kinds = [d["kind"] for d in docs]
    assert kinds == [
        "Secret",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "ServiceMonitor",
        "Ingress",
        "HorizontalPodAutoscaler",
    ]
    # What a first apply creates: the Deployment starts at spec.replicas, the HPA takes over.
    assert docs[1]["spec"]["replicas"] == 3
    assert docs[-1]["spec"]["minReplicas"] == 3 and docs[-1]["spec"]["maxReplicas"] == 8
    pod = docs[1]["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in pod["containers"][0]["env"]}
    assert env["BOX_WEB_BASE_URL"] == "https://fhir.example.com"
    assert env["BOX_DB_HOST"] == "fhir-pg-rw" and env["BOX_DB_RO_REPLICA_HOST"] == "fhir-pg-ro"
    assert env["BOX_LICENSE"] == {"secretKeyRef": {"name": "fhir-license", "key": "license"}}
    assert [v["name"] for v in pod["volumes"]] == [
        "corporate-ca",
        "aidbox-tmp",
        "aidbox-init-bundle",
    ]


def test_render_leaves_to_the_files_config_what_it_sets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The operator never overrides a variable the envFrom sources set; the preview reads the
    sources given with the cluster (and counts others as setting nothing)."""
    source = tmp_path / "cluster.yaml"
    cluster = {
        "apiVersion": "aidbox.io/v1alpha1",
        "kind": "AidboxCluster",
        "metadata": {"name": "web"},
        "spec": {"image": "healthsamurai/aidboxone:2510", "ingress": {"hosts": ["a.example"]}},
    }
    settings = {"kind": "ConfigMap", "metadata": {"name": "web"}, "data": {"JAVA_OPTS": "-Xmx1g"}}
    secret = {"kind": "Secret", "metadata": {"name": "web"}, "stringData": {"AIDBOX_BASE_URL": "x"}}
    source.write_text(yaml.safe_dump_all([settings, secret, cluster]))
    assert main(["render", "-f", str(source)]) == 0
    docs = list(yaml.safe_load_all(capsys.readouterr().out))
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    names = {e["name"] for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert not names & {"BOX_WEB_BASE_URL", "JAVA_OPTS"} and "BOX_INSTANCE_NAME" in names
