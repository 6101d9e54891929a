"""The operator's alerts (deploy/monitoring/prometheusrule.yaml, the one source of the rules):
promtool accepts them and fires each alert exactly in its test cases (tests/unit/alerts/), they
name only series the operator exports, every alert has its runbook, and the chart renders the
same rules only when asked.

promtool and helm are built from their Go modules by tests/tools.py on first use (minutes cold,
then cached outside the repository).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from exported_series import OPERATOR_SERIES, exported_series

from tools import REPO, helm, promtool

RULE_FILE = REPO / "deploy" / "monitoring" / "prometheusrule.yaml"
CASES = Path(__file__).parent / "alerts" / "tests.yaml"
RUNBOOKS = REPO / "docs" / "runbooks.md"
CHART = REPO / "charts" / "aidbox-operator"
# `name{matchers}`: the label names a selector matches on.
SELECTOR = re.compile(r"\b(aidbox_(?:operator|cluster)_[a-zA-Z0-9_]+)\s*\{([^}]*)\}")
MATCHER_LABEL = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")


def _source() -> dict[str, Any]:
    manifest: dict[str, Any] = yaml.safe_load(RULE_FILE.read_text())
    return manifest


def _alerts() -> list[dict[str, Any]]:
    return [rule for group in _source()["spec"]["groups"] for rule in group["rules"]]


def _run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(args), capture_output=True, text=True, timeout=300, cwd=cwd, check=False
    )


@pytest.fixture(scope="module")
def rules_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """rules.yaml (the PrometheusRule's spec: what the Prometheus Operator hands Prometheus)
    beside a copy of the test cases, which name it relative to themselves."""
    folder = tmp_path_factory.mktemp("alerts")
    (folder / "rules.yaml").write_text(yaml.safe_dump(_source()["spec"], sort_keys=False))
    shutil.copyfile(CASES, folder / CASES.name)
    return folder


def test_promtool_accepts_the_rules(rules_dir: Path) -> None:
    out = _run(str(promtool()), "check", "rules", "rules.yaml", cwd=rules_dir)
    assert out.returncode == 0, out.stdout + out.stderr


def test_promtool_fires_each_alert_exactly_in_its_cases(rules_dir: Path) -> None:
    out = _run(str(promtool()), "test", "rules", CASES.name, cwd=rules_dir)
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_alert_has_a_firing_and_a_silent_case() -> None:
    cases = yaml.safe_load(CASES.read_text())["tests"]
    firing, silent = set(), set()
    for case in cases:
        for check in case["alert_rule_test"]:
            (firing if check["exp_alerts"] else silent).add(check["alertname"])
    names = {rule["alert"] for rule in _alerts()}
    assert names - firing == set(), "alerts without a firing case"
    assert names - silent == set(), "alerts without a silent case"
    assert (firing | silent) - names == set(), "cases of alerts that do not exist"


def test_every_alert_has_severity_summary_description_and_its_runbook() -> None:
    headings = set(re.findall(r"^## (\w+)$", RUNBOOKS.read_text(), flags=re.MULTILINE))
    names = set()
    for rule in _alerts():
        name = rule["alert"]
        names.add(name)
        assert rule["labels"]["severity"] in ("warning", "critical"), name
        annotations = rule["annotations"]
        assert annotations["summary"] and annotations["description"], name
        # GitHub's anchor of a heading that is one word: the word in lower case.
        assert annotations["runbook_url"] == f"docs/runbooks.md#{name.lower()}", name
    assert headings == names, "docs/runbooks.md has one section per alert, no more"


def test_rules_name_only_series_and_labels_the_operator_exports() -> None:
    exported = exported_series()
    assert "aidbox_operator_reconciles_total" in exported  # the suffix a scrape really has
    for rule in _alerts():
        expr = rule["expr"]
        used = set(OPERATOR_SERIES.findall(expr))
        assert used - set(exported) == set(), f"{rule['alert']} names series never exported"
        for name, matchers in SELECTOR.findall(expr):
            labels = exported[name]
            if labels is not None:
                assert set(MATCHER_LABEL.findall(matchers)) <= labels, (rule["alert"], name)


def test_the_monitoring_piece_is_optional_and_keeps_the_series_namespace() -> None:
    base = yaml.safe_load((REPO / "deploy" / "base" / "kustomization.yaml").read_text())
    assert not any("monitoring" in entry for entry in base["resources"])
    piece = yaml.safe_load((REPO / "deploy" / "monitoring" / "kustomization.yaml").read_text())
    assert "prometheusrule.yaml" in piece["resources"]
    monitor = yaml.safe_load((REPO / "deploy" / "monitoring" / "servicemonitor.yaml").read_text())
    assert all(endpoint["honorLabels"] for endpoint in monitor["spec"]["endpoints"])
    link = CHART / "files" / "prometheusrule.yaml"
    assert link.is_symlink() and link.resolve() == RULE_FILE.resolve()


def _render(*values: str) -> list[dict[str, Any]]:
    out = _run(str(helm()), "template", "fhir", str(CHART), "--namespace", "ops", *values)
    assert out.returncode == 0, out.stdout + out.stderr
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def test_chart_renders_no_prometheus_rule_by_default() -> None:
    assert not [doc for doc in _render() if doc["kind"] == "PrometheusRule"]


def test_chart_renders_the_same_rules_when_enabled() -> None:
    docs = _render(
        "--set",
        "prometheusRule.enabled=true",
        "--set",
        "prometheusRule.additionalLabels.release=prometheus",
        "--set",
        "serviceMonitor.enabled=true",
    )
    [rule] = [doc for doc in docs if doc["kind"] == "PrometheusRule"]
    assert rule["metadata"]["name"] == "fhir-aidbox-operator"
    assert rule["metadata"]["namespace"] == "ops"
    assert rule["metadata"]["labels"]["release"] == "prometheus"
    assert rule["spec"] == _source()["spec"]
    [monitor] = [doc for doc in docs if doc["kind"] == "ServiceMonitor"]
    assert all(endpoint["honorLabels"] for endpoint in monitor["spec"]["endpoints"])


def test_chart_puts_the_runbook_base_url_in_front() -> None:
    base = "https://git.example.com/aidbox-operator/blob/v0.1.0/"
    docs = _render(
        "--set", "prometheusRule.enabled=true", "--set", f"prometheusRule.runbookBaseUrl={base}"
    )
    [rule] = [doc for doc in docs if doc["kind"] == "PrometheusRule"]
    rendered = [r for group in rule["spec"]["groups"] for r in group["rules"]]
    assert [r["annotations"]["runbook_url"] for r in rendered] == [
        base + r["annotations"]["runbook_url"] for r in _alerts()
    ]
