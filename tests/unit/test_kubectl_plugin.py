"""`kubectl aidbox` without a cluster: what status and versions print, what a support bundle
keeps of an object, the blanking of Secret values, the completion script."""

from __future__ import annotations

import base64
import subprocess
from typing import Any

from aidbox_operator.kubectl.completion import script
from aidbox_operator.kubectl.main import build_parser
from aidbox_operator.kubectl.redact import REDACTED, blank, scrub, secret_needles
from aidbox_operator.kubectl.report import about_cluster
from aidbox_operator.kubectl.views import (
    STATUS_HEADER,
    reason,
    status_row,
    table,
    versions_rows,
)


def _cluster(name: str, **status: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "prod"}, "spec": {}, "status": status}


def _cond(type_: str, state: str, why: str) -> dict[str, str]:
    return {"type": type_, "status": state, "reason": why}


def test_status_row_says_releases_url_and_why() -> None:
    mixed = _cluster(
        "fhir",
        ready="3/3",
        phase="Progressing",
        runningVersions={"2510.2": 1, "2510.1": 2},
        conditions=[_cond("Ready", "False", "RollingOut"), _cond("Stalled", "False", "AsExpected")],
    )
    row = status_row(mixed)
    assert row == (
        "prod",
        "fhir",
        "3/3",
        "Progressing",
        "2510.1x2,2510.2x1",
        "http://fhir.prod.svc:8080",
        "RollingOut",
    )
    fresh = status_row({"metadata": {"name": "new", "namespace": "prod"}, "spec": {}})
    assert fresh[2:5] == ("-", "Pending", "-") and fresh[6] == "NotObserved"
    exposed = _cluster("web", ready="2/2", url="https://fhir.example.com")
    assert status_row(exposed)[5] == "https://fhir.example.com"


def test_reason_puts_a_final_failure_before_readiness_and_waits_last() -> None:
    failed = _cluster(
        "a",
        conditions=[
            _cond("Ready", "False", "RollingOut"),
            _cond("Stalled", "True", "UpgradeFailed"),
        ],
    )
    queued = _cluster(
        "b",
        conditions=[
            _cond("Ready", "True", "AllReplicasReady"),
            _cond("Progressing", "True", "WaveQueued"),
        ],
    )
    ready = _cluster("c", conditions=[_cond("Ready", "True", "AllReplicasReady")])
    paused = _cluster(
        "d",
        conditions=[
            _cond("Ready", "True", "AllReplicasReady"),
            _cond("Progressing", "False", "Paused"),
        ],
    )
    assert [reason(failed), reason(queued), reason(ready), reason(paused)] == [
        "UpgradeFailed",
        "WaveQueued",
        "",
        "Paused",
    ]


def test_versions_count_pods_per_release_across_clusters() -> None:
    bodies = [
        _cluster("a", runningVersions={"2510.1": 2}),
        _cluster("b", runningVersions={"2510.1": 1, "2510.2": 1}),
        _cluster("c", version="2409.2"),
    ]
    assert versions_rows(bodies) == [
        ("2409.2", "0", "prod/c"),
        ("2510.1", "3", "prod/a,prod/b"),
        ("2510.2", "1", "prod/b"),
    ]


def test_table_aligns_columns_like_kubectl() -> None:
    text = table(("A", "LONGER"), [("xyz", "1"), ("q", "22")])
    assert text.splitlines() == ["A     LONGER", "xyz   1", "q     22"]
    assert len(STATUS_HEADER) == 7


def test_scrub_keeps_secret_key_names_and_blanks_literal_env() -> None:
    secret = {
        "metadata": {
            "name": "fhir",
            "managedFields": [{"manager": "kubectl"}],
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": '{"data":1}'},
        },
        "data": {"BOX_DB_PASSWORD": "c2VjcmV0LXB3ZA=="},
        "type": "Opaque",
    }
    kept = scrub(secret, "Secret")
    assert kept == {"type": "Opaque", "metadata": {"name": "fhir"}, "keys": ["BOX_DB_PASSWORD"]}
    container = {"name": "aidbox", "env": [{"name": "BOX_DB_PASSWORD", "value": "hunter22"}]}
    deployment = {"metadata": {"name": "fhir"}, "spec": {"containers": [container]}}
    env = scrub(deployment, "Deployment")["spec"]["containers"][0]["env"]
    assert env == [{"name": "BOX_DB_PASSWORD", "value": REDACTED}]


def test_blank_finds_a_secret_value_whole_encoded_and_line_by_line() -> None:
    pem = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nBKcwggSjAgEAAoIBAQC7\n"
    password = "s3cret-pw"
    values = [base64.b64encode(v.encode()).decode() for v in (pem, password)]
    needles = secret_needles(values)
    text = (
        f"a log line with {password} in it\nmessage: MIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n"
        f"data: {values[1]}\nnothing here: -----BEGIN PRIVATE KEY-----\n"
    )
    out, count = blank(text, needles)
    assert password not in out and "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC" not in out
    assert values[1] not in out and count == 3
    assert "-----BEGIN PRIVATE KEY-----" in out  # a marker line is no secret


def test_log_lines_about_one_cluster_in_either_format() -> None:
    assert about_cluster("... applied [prod/fhir]", "prod", "fhir")
    assert not about_cluster("... applied [prod/fhir2]", "prod", "fhir")
    assert about_cluster('{"message": "x", "namespace": "prod", "cluster": "fhir"}', "prod", "fhir")
    assert not about_cluster('{"namespace": "prod", "cluster": "other"}', "prod", "fhir")


def test_completion_script_names_every_command_and_is_valid_bash() -> None:
    text = script("bash", build_parser())
    for command in ("status", "versions", "pause", "resume", "restart", "report"):
        assert f"        {command})" in text
    assert "--all-namespaces" in text and "--operator-log" in text
    subprocess.run(["bash", "-n"], input=text, text=True, check=True)
    assert script("zsh", build_parser()).startswith("autoload -U +X bashcompinit")
