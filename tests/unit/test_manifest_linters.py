"""The manifest linters (scripts/lint_manifests.py: kube-score, built from its Go module, and
Checkov, installed from PyPI into a venv of its own) pass on every rendered example and both
installs, with only the findings lint-allow.yaml accepts.

Under `make test` the tools are built and installed in the background by tests/prebuild.py while
the earlier suites run; alone (`make unit`) the first run does it (minutes, cached after).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "lint_manifests", REPO / "scripts" / "lint_manifests.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["lint_manifests"] = module
    spec.loader.exec_module(module)
    return module


lint_manifests = _load()


@pytest.fixture(scope="module")
def allow() -> list[object]:
    entries: list[object] = lint_manifests.load_allow_list()
    return entries


def test_every_input_passes_the_linters(allow: list[object]) -> None:
    results = lint_manifests.lint(allow)
    left = [f"{r.input}: {f}" for r in results for f in r.left]
    assert not left, "findings not in lint-allow.yaml:\n" + "\n".join(left)
    stale = lint_manifests.unused(results, allow)
    assert not stale, f"lint-allow.yaml entries that match no finding: {stale}"
    inputs = {r.input for r in results}
    assert inputs == set(lint_manifests.inputs()), inputs


def test_a_finding_off_the_list_is_left(allow: list[object]) -> None:
    finding = lint_manifests.Finding("kube-score", "container-resources", "Deployment", "x", "m")
    result = lint_manifests.judge("examples/ha", "kube-score", [finding], allow)
    assert result.left == [finding]
    assert (
        lint_manifests.table([result]).splitlines()[-1]
        == "| examples/ha | kube-score | 1 | 0 | 1 |"
    )


def test_globs_match_kind_name_and_input() -> None:
    entry = lint_manifests.Allowed("kube-score", "c", "Deploy*", "fhir-*", "why", "examples/*")
    finding = lint_manifests.Finding("kube-score", "c", "Deployment", "fhir-prod", "m")
    assert entry.covers("examples/channel", finding)
    assert not entry.covers("chart", finding)
    other = lint_manifests.Finding("kube-score", "c", "Deployment", "aidbox", "m")
    assert not entry.covers("examples/channel", other)


def test_every_allowed_finding_says_why(tmp_path: Path) -> None:
    path = tmp_path / "allow.yaml"
    path.write_text("- {tool: kube-score, check: c, kind: '*', name: '*', why: ' '}\n")
    with pytest.raises(ValueError, match="no `why`"):
        lint_manifests.load_allow_list(path)


def test_one_entry_may_list_checks_and_each_must_match() -> None:
    entry = lint_manifests.Allowed("checkov", ["CKV_A", "CKV_B"], "*", "*", "why")
    finding = lint_manifests.Finding("checkov", "CKV_A", "Deployment", "aidbox", "m")
    assert entry.covers("examples/ha", finding)
    result = lint_manifests.judge("examples/ha", "checkov", [finding], [entry])
    assert result.allowed == [finding]
    assert lint_manifests.unused([result], [entry]) == [(entry, "CKV_B")]


def test_checkov_findings_name_the_object_at_their_line() -> None:
    text = "kind: Secret\nmetadata: {name: s}\n---\nkind: Deployment\nmetadata:\n  name: d\n"
    check = {"check_id": "CKV_K8S_1", "check_name": "n", "file_line_range": [5, 6]}
    finding = lint_manifests._checkov_finding(check, text)
    assert finding == lint_manifests.Finding("checkov", "CKV_K8S_1", "Deployment", "d", "n")
