"""scripts/dashboard_picture.py: the PromQL it evaluates in Python is the dashboard's, and it
evaluates it as Prometheus would on the recorded samples."""

from __future__ import annotations

import gzip
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]


def _load() -> ModuleType:
    path = REPO / "scripts" / "dashboard_picture.py"
    spec = importlib.util.spec_from_file_location("dashboard_picture", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["dashboard_picture"] = module
    spec.loader.exec_module(module)
    return module


picture = _load()


def test_the_drawn_queries_are_the_dashboards() -> None:
    dashboard = json.loads(picture.DASHBOARD.read_text())
    picture.check_queries(dashboard)
    for panel in dashboard["panels"]:
        if panel["title"] == "Stalled":
            panel["targets"][0]["expr"] = "count(aidbox_cluster_stalled)"
    with pytest.raises(SystemExit, match="Stalled"):
        picture.check_queries(dashboard)


def _scrape(t: float, reconciles: float, ready: float) -> dict[str, object]:
    return {
        "t": t,
        "series": {
            'aidbox_cluster_info{namespace="a",name="x",phase="Ready",version="1"}': 1,
            'aidbox_cluster_info{namespace="a",name="y",phase="Degraded",version="1"}': 1,
            'aidbox_cluster_ready{namespace="a",name="x"}': ready,
            'aidbox_cluster_ready{namespace="a",name="y"}': 0,
            'aidbox_cluster_stalled{namespace="a",name="y",reason="ResourceConflict"}': 1,
            "aidbox_operator_leader": 1,
            'aidbox_operator_reconciles_total{result="success"}': reconciles,
        },
    }


def test_stats_and_rates_over_a_recording() -> None:
    scrapes = [_scrape(3.0 * i, 6.0 * i, 1.0) for i in range(8)]
    rec = picture.Recording({"events": [], "scrapes": scrapes})
    assert picture.stats(rec, 7) == {
        "Clusters": 2,
        "Ready": 1,
        "Not ready": 1,
        "Stalled": 1,
        "Upgrading": 0,
        "Leading replicas": 1,
    }
    # 6 more every 3 s: 2 per second, once the window holds RATE_WINDOW seconds of samples.
    assert rec.rate_by(7, "aidbox_operator_reconciles_total", "result") == {"success": 2.0}
    assert rec.rate_by(0, "aidbox_operator_reconciles_total", "result") == {}
    assert rec.by(7, "aidbox_cluster_stalled", "reason", "count") == {"ResourceConflict": 1}


def test_the_committed_samples_are_a_real_recording() -> None:
    data = json.loads(gzip.decompress(picture.SAMPLES.read_bytes()))
    rec = picture.Recording(data)
    assert len(rec.times) >= 50 and rec.times[-1] >= 150
    assert [e["label"] for e in data["events"]] == [s[1] for s in picture.SCENARIO if s[1]]
    assert picture.stats(rec, len(rec.times) - 1)["Clusters"] == 6
