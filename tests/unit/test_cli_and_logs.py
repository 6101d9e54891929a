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
    keys_env = {e["name"] for e in container["env"] if "valueFrom" in e}
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
