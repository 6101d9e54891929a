"""The fleet dashboard (deploy/monitoring/dashboards/aidbox-fleet.json, the one source of it):
well-formed for Grafana, every query accepted by promtool and returning data from the series
the operator really exports (and the Aidbox series its alerts assume), and shipped the same by
kustomize and the chart, only when asked."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import yaml
from exported_series import OPERATOR_SERIES, exported_series, fake_cluster_series
from prometheus_client import generate_latest

from tools import REPO, helm, promtool

DASHBOARD = REPO / "deploy" / "monitoring" / "dashboards" / "aidbox-fleet.json"
CHART = REPO / "charts" / "aidbox-operator"
# Grafana's variables, as a query sees them with everything selected.
VARIABLES = {"$namespace": ".*", "$cluster": ".*", "$__rate_interval": "5m"}
# Series beside the per-cluster ones (which come from a real exposition): one scrape a minute
# for ten minutes; counters and histogram buckets grow.
OTHER_SERIES = {
    "aidbox_operator_leader": "1x10",
    'aidbox_operator_clusters{phase="Ready"}': "3x10",
    "aidbox_operator_queue_depth": "0x10",
    'aidbox_operator_reconciles_total{result="success"}': "0+6x10",
    'aidbox_operator_api_requests_total{verb="get"}': "0+9x10",
    'aidbox_operator_reconcile_duration_seconds_bucket{le="0.1"}': "0+5x10",
    'aidbox_operator_reconcile_duration_seconds_bucket{le="+Inf"}': "0+6x10",
    'aidbox_http_request_duration_seconds_bucket{namespace="prod",service="fhir",le="0.5"}': (
        "0+50x10"
    ),
    'aidbox_http_request_duration_seconds_bucket{namespace="prod",service="fhir",le="+Inf"}': (
        "0+60x10"
    ),
    'aidbox_http_request_duration_seconds_count{namespace="prod",service="fhir"}': "0+60x10",
    'hikari_timeout_total{namespace="prod",service="fhir"}': "0+1x10",
    'httpkit_queue_count{namespace="prod",service="fhir"}': "4x10",
    'jvm_memory_bytes_used{area="heap",namespace="prod",service="fhir",pod="fhir-0"}': "9e8x10",
}


def _dashboard() -> dict[str, Any]:
    board: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return board


def _queries() -> list[tuple[str, str]]:
    """(panel title, expression with Grafana's variables filled in) of every query."""
    found = []
    for panel in _dashboard()["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for name, value in VARIABLES.items():
                expr = expr.replace(name, value)
            found.append((panel["title"], expr))
    return found


def test_the_dashboard_is_well_formed_for_grafana() -> None:
    board = _dashboard()
    assert board["uid"] == "aidbox-fleet" and board["schemaVersion"] >= 36
    panels = board["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    variables = {v["name"] for v in board["templating"]["list"]}
    assert variables == {"datasource", "namespace", "cluster"}
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"] and panel["description"], panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            used = set(re.findall(r"\$\w+", target["expr"]))
            assert used <= set(VARIABLES), (panel["title"], used)


def _rules(queries: list[tuple[str, str]]) -> dict[str, Any]:
    rules = [{"record": f"dashboard:query_{i}", "expr": e} for i, (_, e) in enumerate(queries)]
    return {"groups": [{"name": "dashboard", "rules": rules}]}


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=300, cwd=cwd)


def test_promtool_accepts_every_query(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(_rules(_queries())))
    out = _run(str(promtool()), "check", "rules", "rules.yaml", cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr


def test_queries_name_only_series_and_labels_the_operator_exports() -> None:
    exported = exported_series()
    for title, expr in _queries():
        used = set(OPERATOR_SERIES.findall(expr))
        assert used <= set(exported), (title, used - set(exported))
        for name, matchers in re.findall(r"\b(aidbox_cluster_\w+)\{([^}]*)\}", expr):
            labels = set(re.findall(r"(\w+)\s*=~", matchers))
            assert labels <= (exported[name] or set()), (title, name, labels)


def _cluster_series() -> dict[str, str]:
    """The per-cluster series exactly as a scrape of the operator shows them."""
    text = generate_latest(fake_cluster_series()).decode()
    found = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            series, value = line.rsplit(" ", 1)
            found[series] = f"{float(value):g}x10"
    return found


def test_every_query_returns_data_from_the_series(tmp_path: Path) -> None:
    """Each query, over the operator's real per-cluster series and the other series above,
    has a result at the end of the ten minutes (count(...) > bool 0 is 1 exactly then)."""
    series = {**_cluster_series(), **OTHER_SERIES}
    checks = [
        {
            "expr": f"count({expr}) > bool 0",
            "eval_time": "10m",
            "exp_samples": [{"labels": "{}", "value": 1}],
        }
        for _, expr in _queries()
    ]
    cases = {
        "rule_files": [],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": s, "values": v} for s, v in series.items()],
                "promql_expr_test": checks,
            }
        ],
    }
    (tmp_path / "cases.yaml").write_text(yaml.safe_dump(cases, sort_keys=False))
    out = _run(str(promtool()), "test", "rules", "cases.yaml", cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr


def _render(*values: str) -> list[dict[str, Any]]:
    out = _run(str(helm()), "template", "fhir", str(CHART), "--namespace", "ops", *values, cwd=REPO)
    assert out.returncode == 0, out.stdout + out.stderr
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def test_the_chart_ships_the_same_dashboard_only_when_asked() -> None:
    assert not [d for d in _render() if d["kind"] == "ConfigMap"]
    docs = _render("--set", "grafanaDashboard.enabled=true")
    [config] = [d for d in docs if d["kind"] == "ConfigMap"]
    assert config["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config["metadata"]["namespace"] == "ops"
    assert json.loads(config["data"]["aidbox-fleet.json"]) == _dashboard()
    elsewhere = _render(
        "--set", "grafanaDashboard.enabled=true", "--set", "grafanaDashboard.namespace=grafana"
    )
    [config] = [d for d in elsewhere if d["kind"] == "ConfigMap"]
    assert config["metadata"]["namespace"] == "grafana"


def test_kustomize_and_the_chart_read_one_file() -> None:
    path = CHART / "files" / "aidbox-fleet.json"
    assert path.is_symlink() and path.resolve() == DASHBOARD.resolve()
    piece = yaml.safe_load((REPO / "deploy" / "monitoring" / "kustomization.yaml").read_text())
    [generator] = piece["configMapGenerator"]
    assert generator["files"] == ["dashboards/aidbox-fleet.json"]
    assert generator["options"]["labels"] == {"grafana_dashboard": "1"}
