#!/usr/bin/env python3
"""Manifest linters on everything the project puts into a cluster (`make lint`; in `make test`
as tests/unit/test_manifest_linters.py).

Inputs: each example rendered by `aidbox-operator render -f examples/<name>.yaml` (the objects
the operator would apply for it), the operator install from deploy/ rendered by kustomize (both
overlays, and the default one with the optional deploy/monitoring next to it), and the Helm
chart rendered by `helm template`, once with its defaults and once with every option on.

Linters: kube-score with every optional check on, and Checkov's Kubernetes checks (CKV_K8S_*,
CKV2_K8S_*) offline. kube-linter and Polaris were meant to run too, but the Go module proxy this
project builds from refuses both modules (tests/tools.py); Checkov, a PyPI package, covers the
same ground (security context, probes, resources, RBAC, secrets, images).

Every finding must be fixed or listed in lint-allow.yaml with the reason it is right; an entry
that matches nothing fails too, so the list cannot outlive the findings it excuses. Prints,
per input, the findings before and after the allow-list; exits 1 on any finding left.
"""

from __future__ import annotations

import argparse
import fnmatch
import functools
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

import tools  # noqa: E402  (tests/tools.py: builds the Go tools the tests use)

ALLOW_LIST = REPO / "lint-allow.yaml"
CHART = REPO / "charts" / "aidbox-operator"
OPERATOR_NAMESPACE = "aidbox-operator-system"
EXAMPLES = ("minimal", "ha", "production", "channel")
# The oldest Kubernetes the install supports (docs/install.md: the admission policy needs 1.30).
KUBERNETES_VERSION = "v1.30"
# kube-score's grades: 1 critical, 5 warning, 7 almost OK, 10 OK. A finding is a warning or worse.
WORST_ACCEPTED_GRADE = 5
CHART_ALL_ON = (
    "serviceMonitor.enabled=true",
    "prometheusRule.enabled=true",
    "grafanaDashboard.enabled=true",
    "watchNamespaces={aidbox,fhir}",
)


@dataclass(frozen=True)
class Finding:
    tool: str
    check: str
    kind: str
    name: str
    message: str

    def __str__(self) -> str:
        return f"{self.tool} {self.check} {self.kind}/{self.name}: {self.message}"


@dataclass(frozen=True)
class Allowed:
    """One lint-allow.yaml entry: findings of `check` by `tool` on objects matching the globs
    (`message` narrows it to one of the check's complaints). `check` may list several ids that
    one reason covers."""

    tool: str
    check: str | tuple[str, ...]
    kind: str
    name: str
    why: str
    input: str = "*"
    message: str = "*"

    def __post_init__(self) -> None:
        if not isinstance(self.check, str):
            object.__setattr__(self, "check", tuple(self.check))

    @property
    def checks(self) -> tuple[str, ...]:
        return (self.check,) if isinstance(self.check, str) else self.check

    def covers(self, input_name: str, finding: Finding) -> bool:
        return (
            self.tool == finding.tool
            and finding.check in self.checks
            and fnmatch.fnmatchcase(finding.kind, self.kind)
            and fnmatch.fnmatchcase(finding.name, self.name)
            and fnmatch.fnmatchcase(input_name, self.input)
            and fnmatch.fnmatchcase(finding.message, self.message)
        )


@dataclass
class Result:
    """One input's findings under one tool, split by the allow-list."""

    input: str
    tool: str
    allowed: list[Finding] = field(default_factory=list)
    left: list[Finding] = field(default_factory=list)


def load_allow_list(path: Path = ALLOW_LIST) -> list[Allowed]:
    entries = yaml.safe_load(path.read_text()) or []
    allowed = [Allowed(**entry) for entry in entries]
    for entry in allowed:
        if not entry.why.strip():
            raise ValueError(f"{path}: {entry.tool} {entry.check} has no `why`")
        if not entry.checks:
            raise ValueError(f"{path}: a {entry.tool} entry names no check")
    return allowed


def _run(command: list[str], what: str) -> str:
    out = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{what} failed ({out.returncode}):\n{out.stderr}")
    return out.stdout


def _render_example(name: str) -> str:
    cli = Path(sys.executable).with_name("aidbox-operator")
    path = REPO / "examples" / f"{name}.yaml"
    return _run([str(cli), "render", "-f", str(path)], f"aidbox-operator render -f {path}")


def _kustomize(*directories: str) -> str:
    texts = [
        _run([str(tools.kustomize()), "build", str(REPO / d)], f"kustomize build {d}")
        for d in directories
    ]
    return "---\n".join(texts)


def _helm_template(*sets: str) -> str:
    command = [str(tools.helm()), "template", "aidbox-operator", str(CHART)]
    command += ["--namespace", OPERATOR_NAMESPACE, "--include-crds"]
    for value in sets:
        command += ["--set", value]
    return _run(command, "helm template")


def inputs() -> dict[str, Callable[[], str]]:
    """Each input's name and how to render it to one multi-document YAML text."""
    rendered: dict[str, Callable[[], str]] = {
        f"examples/{name}": functools.partial(_render_example, name) for name in EXAMPLES
    }
    for directory in ("deploy", "deploy/overlays/single-namespace"):
        rendered[directory] = functools.partial(_kustomize, directory)
    # The monitoring parts go next to an install (their Service selects the operator's pods).
    rendered["deploy + deploy/monitoring"] = functools.partial(
        _kustomize, "deploy", "deploy/monitoring"
    )
    rendered["chart"] = _helm_template
    rendered["chart (all options on)"] = functools.partial(_helm_template, *CHART_ALL_ON)
    return rendered


def kube_score(text: str) -> list[Finding]:
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as manifest:
        manifest.write(text)
        manifest.flush()
        command = [str(tools.kube_score()), "score", manifest.name, "--output-format", "json"]
        command += ["--all-default-optional", "--kubernetes-version", KUBERNETES_VERSION]
        out = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    if out.returncode not in (0, 1):  # 1: some critical finding, reported in the JSON
        raise RuntimeError(f"kube-score failed ({out.returncode}):\n{out.stderr}")
    return _kube_score_findings(json.loads(out.stdout or "[]") or [])


def _kube_score_findings(objects: list[dict[str, Any]]) -> list[Finding]:
    findings = []
    for obj in objects:
        kind, name = obj["type_meta"]["kind"], obj["object_meta"]["name"]
        for check in obj["checks"]:
            if check["skipped"] or check["grade"] > WORST_ACCEPTED_GRADE:
                continue
            comments = check.get("comments") or [{}]
            message = "; ".join(
                f"{c.get('path', '')}: {c.get('summary', '')}".strip(": ") for c in comments
            )
            findings.append(Finding("kube-score", check["check"]["id"], kind, name, message))
    return sorted(set(findings), key=str)


def _kube_score_all(texts: dict[str, str]) -> dict[str, list[Finding]]:
    return {input_name: kube_score(text) for input_name, text in texts.items()}


# Checkov without an API key asks Prisma Cloud for check metadata unless told --skip-download,
# and PyPI for a newer version of itself unless CKV_SKIP_PACKAGE_UPDATE_CHECK is set: with both
# it opens no network connection (checked under strace in a network namespace of its own).
# Results are uploaded only with an API key; --skip-results-upload says so all the same.
CHECKOV_ENV = {"CKV_SKIP_PACKAGE_UPDATE_CHECK": "true"}
CHECKOV_OFFLINE = ("--skip-download", "--skip-results-upload")


def checkov(texts: dict[str, str]) -> dict[str, list[Finding]]:
    """All inputs in one Checkov run (its start-up takes seconds), one file each."""
    with tempfile.TemporaryDirectory() as directory:
        files = {f"input-{i}.yaml": name for i, name in enumerate(texts)}
        for file, input_name in files.items():
            Path(directory, file).write_text(texts[input_name])
        command = [str(tools.checkov()), "-d", directory, "--framework", "kubernetes"]
        command += ["--output", "json", "--quiet", "--compact", *CHECKOV_OFFLINE]
        env = {**os.environ, **CHECKOV_ENV}
        out = subprocess.run(
            command, capture_output=True, text=True, timeout=300, check=False, env=env
        )
    if out.returncode not in (0, 1):  # 1: some check failed, reported in the JSON
        raise RuntimeError(f"checkov failed ({out.returncode}):\n{out.stderr}")
    report = json.loads(out.stdout)
    failed = report.get("results", {}).get("failed_checks", []) if isinstance(report, dict) else []
    findings: dict[str, list[Finding]] = {name: [] for name in texts}
    for check in failed:
        input_name = files[Path(check["file_path"]).name]
        findings[input_name].append(_checkov_finding(check, texts[input_name]))
    return {name: sorted(set(found), key=str) for name, found in findings.items()}


def _checkov_finding(check: dict[str, Any], text: str) -> Finding:
    # The object is found by the line Checkov names: its `resource` for a pod checked through
    # its workload is "Pod.<namespace>.<name>.<labels>", which does not split back into a name.
    kind, name = _object_at_line(text, check["file_line_range"][0])
    return Finding("checkov", check["check_id"], kind, name, check["check_name"])


def _object_at_line(text: str, line: int) -> tuple[str, str]:
    """Kind and name of the YAML document that holds `line` (1-based) of a multi-document text."""
    found = ("?", "?")
    for node in yaml.compose_all(text, Loader=yaml.SafeLoader):
        if node is None or node.start_mark.line + 1 > line:
            break
        obj = yaml.safe_load(yaml.serialize(node)) or {}
        found = (obj.get("kind", "?"), (obj.get("metadata") or {}).get("name", "?"))
    return found


TOOLS: dict[str, Callable[[dict[str, str]], dict[str, list[Finding]]]] = {
    "kube-score": _kube_score_all,
    "checkov": checkov,
}


def judge(input_name: str, tool: str, found: Iterable[Finding], allow: list[Allowed]) -> Result:
    result = Result(input_name, tool)
    for finding in found:
        if any(entry.covers(input_name, finding) for entry in allow):
            result.allowed.append(finding)
        else:
            result.left.append(finding)
    return result


def unused(results: list[Result], allow: list[Allowed]) -> list[tuple[Allowed, str]]:
    """Allow-list entries, and check ids of an entry, that excuse no finding of this run (stale:
    remove them)."""
    allowed = [(r.input, f) for r in results for f in r.allowed]
    return [
        (entry, check)
        for entry in allow
        for check in entry.checks
        if not any(f.check == check and entry.covers(name, f) for name, f in allowed)
    ]


def lint(allow: list[Allowed], only: Iterable[str] = ()) -> list[Result]:
    texts = {name: render() for name, render in inputs().items() if not only or name in only}
    found = {tool: run(texts) for tool, run in TOOLS.items()}
    return [
        judge(input_name, tool, found[tool][input_name], allow)
        for input_name in texts
        for tool in TOOLS
    ]


def table(results: list[Result]) -> str:
    rows = ["| input | tool | findings | allowed | left |", "| --- | --- | ---: | ---: | ---: |"]
    for r in results:
        found = len(r.allowed) + len(r.left)
        rows.append(f"| {r.input} | {r.tool} | {found} | {len(r.allowed)} | {len(r.left)} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--no-allow-list", action="store_true", help="report every finding")
    parser.add_argument("--input", action="append", default=[], help="only this input")
    args = parser.parse_args(argv)
    allow = [] if args.no_allow_list else load_allow_list()
    results = lint(allow, args.input)
    print(table(results))
    left = [(r.input, f) for r in results for f in r.left]
    for input_name, finding in left:
        print(f"{input_name}: {finding}")
    stale = [] if args.input else unused(results, allow)
    for entry, check in stale:
        print(
            f"lint-allow.yaml: {entry.tool} {check} {entry.kind}/{entry.name} matches "
            "no finding: remove it"
        )
    return 1 if left or stale else 0


if __name__ == "__main__":
    sys.exit(main())
