"""promtool unit-test cases made from a real scrape of the operator (tests/integration/
test_alerts_live.py): each sample an alert's expression reads becomes an input series held at
its scraped value, labelled as Prometheus would label it (job, instance), and promtool runs
the rules of deploy/monitoring/prometheusrule.yaml on them."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tools import REPO, promtool

RULE_FILE = REPO / "deploy" / "monitoring" / "prometheusrule.yaml"
# The job a ServiceMonitor of deploy/monitoring gives the operator's targets.
JOB = "aidbox-operator-metrics"
INTERVAL_MINUTES = 1  # the cases' scrape and rule evaluation interval
MARGIN_MINUTES = 5  # evaluated this long after the alert's `for` has passed
_SAMPLE = re.compile(r"^([a-zA-Z_:][\w:]*)(?:\{([^}]*)\})? (\S+)$")
_LABEL = re.compile(r'([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"')
_SERIES = re.compile(r"\b(?:aidbox_(?:operator|cluster)_[a-zA-Z0-9_]+|up)\b")

Sample = tuple[str, dict[str, str], float]


def rules() -> dict[str, dict[str, Any]]:
    """Each alert's rule as the manifest has it, by alert name."""
    spec = yaml.safe_load(RULE_FILE.read_text())["spec"]
    return {rule["alert"]: rule for group in spec["groups"] for rule in group["rules"]}


def samples(text: str) -> list[Sample]:
    """The samples of a text exposition: (name, labels, value)."""
    found = []
    for line in text.splitlines():
        if match := _SAMPLE.match(line):
            found.append((match[1], dict(_LABEL.findall(match[2] or "")), float(match[3])))
    return found


def of_cluster(scraped: list[Sample], namespace: str, name: str) -> list[Sample]:
    """The operator's own series and one cluster's per-cluster series (the other clusters the
    same operator runs would fire alerts of their own)."""
    return [
        (series, labels, value)
        for series, labels, value in scraped
        if not series.startswith("aidbox_cluster_")
        or (labels.get("namespace"), labels.get("name")) == (namespace, name)
    ]


def _minutes(duration: str) -> int:
    match = re.fullmatch(r"(\d+)m", duration)
    assert match, f"a `for` in whole minutes: {duration}"
    return int(match[1])


def eval_minutes(alert: str) -> int:
    return _minutes(rules()[alert]["for"]) + MARGIN_MINUTES


def _selector(series: str, labels: dict[str, str]) -> str:
    inner = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return f"{series}{{{inner}}}"


def input_series(
    alert: str, scraped: list[Sample], instance: str, values: str = ""
) -> list[dict[str, str]]:
    """The samples the alert's expression names, each held at its scraped value over the
    alert's `for` and the margin (or the given promtool `values`)."""
    read = set(_SERIES.findall(rules()[alert]["expr"]))
    steps = eval_minutes(alert) // INTERVAL_MINUTES + 1
    return [
        {
            "series": _selector(series, {**labels, "job": JOB, "instance": instance}),
            "values": values or f"{value:g}x{steps}",
        }
        for series, labels, value in scraped
        if series in read
    ]


def run(
    workdir: Path, alert: str, series: list[dict[str, str]], expected: list[dict[str, str]]
) -> subprocess.CompletedProcess[str]:
    """`promtool test rules` of one case: `alert` fires with exactly the `expected` labels
    (none: silent) at the alert's `for` plus the margin. The rules are the manifest's with
    their annotations left out: they do not decide what fires, and their text is checked by
    tests/unit/alerts/tests.yaml."""
    spec = yaml.safe_load(RULE_FILE.read_text())["spec"]
    for group in spec["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    (workdir / "rules.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    case = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": f"{INTERVAL_MINUTES}m",
        "tests": [
            {
                "name": f"{alert} on the real operator's series",
                "interval": f"{INTERVAL_MINUTES}m",
                "input_series": series,
                "alert_rule_test": [
                    {
                        "eval_time": f"{eval_minutes(alert)}m",
                        "alertname": alert,
                        "exp_alerts": [{"exp_labels": labels} for labels in expected],
                    }
                ],
            }
        ],
    }
    (workdir / "case.yaml").write_text(yaml.safe_dump(case, sort_keys=False))
    return subprocess.run(
        [str(promtool()), "test", "rules", "case.yaml"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=workdir,
        check=False,
    )
