#!/usr/bin/env python3
"""docs/images/dashboard.png: the fleet panels of deploy/monitoring/dashboards/aidbox-fleet.json
drawn from a real run of the operator on the sandbox.

    .venv/bin/python scripts/dashboard_picture.py record   # sandbox run, ~3 min: the samples
    .venv/bin/python scripts/dashboard_picture.py draw     # the PNG from the recorded samples

(`draw` needs matplotlib: `pip install -e '.[bench]'`.)

`record` starts the sandbox (AIDBOX_SANDBOX_DIR, else the default one; stopped again unless it
already ran) and the operator (leader election on, metrics on loopback), plays SCENARIO (clusters
created, an unowned Service in one's way, a release change, a cluster whose pods never get
Ready, a scale-up) and scrapes the operator's /metrics every INTERVAL seconds, keeping the
series the fleet panels read, to docs/images/dashboard-samples.json.gz. `draw` evaluates each
panel's PromQL directly in Python over those samples (the expressions are simple: sum, count,
count/sum by a label, rate over RATE_WINDOW, max); the panels and their queries are checked
against the dashboard file, so a changed panel query fails here instead of drawing a stale one.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
DASHBOARD = REPO / "deploy" / "monitoring" / "dashboards" / "aidbox-fleet.json"
SAMPLES = REPO / "docs" / "images" / "dashboard-samples.json.gz"
PICTURE = REPO / "docs" / "images" / "dashboard.png"
INTERVAL = 3.0
DURATION = 180.0
RATE_WINDOW = 15.0  # Grafana's $__rate_interval for a 3 s scrape: four scrapes and a bit
KEPT = (
    "aidbox_cluster_",
    "aidbox_operator_clusters",
    "aidbox_operator_leader",
    "aidbox_operator_queue_depth",
    "aidbox_operator_reconciles_total",
    "aidbox_operator_api_requests_total",
)
IMAGE, NEXT_IMAGE = "healthsamurai/aidboxone:2510.1", "healthsamurai/aidboxone:2510.2"
NOT_READY_LABEL = "sandbox.aidbox.io/not-ready"
# (seconds after the start, what happens, kubectl arguments or None for a cluster to create)
Step = tuple[float, str, dict[str, Any]]
SCENARIO: tuple[Step, ...] = (
    (0, "4 clusters created", {"create": [("fleet-a", "fhir", 3), ("fleet-a", "portal", 2)]}),
    (0, "", {"create": [("fleet-b", "ehr", 2), ("fleet-b", "lab", 1)]}),
    (40, "fhir: new release", {"patch": ("fleet-a", "fhir", {"image": NEXT_IMAGE})}),
    (70, "reports: pods never Ready", {"create": [("fleet-b", "reports", 2)], "bad": True}),
    (100, "legacy: Service in the way", {"create": [("fleet-b", "legacy", 2)], "block": True}),
    (130, "portal: scaled 2 -> 4", {"patch": ("fleet-a", "portal", {"replicas": 4})}),
)


# ---------------------------------------------------------------- recording on the sandbox


def _cluster_objects(namespace: str, name: str, replicas: int, bad: bool) -> list[dict[str, Any]]:
    meta = {"name": name, "namespace": namespace}
    spec: dict[str, Any] = {"image": IMAGE, "replicas": replicas}
    if bad:
        spec["podLabels"] = {NOT_READY_LABEL: "true"}
    return [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"BOX_DB_HOST": "pg"}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": meta, "stringData": {"BOX_X": "x"}},
        {
            "apiVersion": "aidbox.io/v1alpha1",
            "kind": "AidboxCluster",
            "metadata": meta,
            "spec": spec,
        },
    ]


def _blocking_service(namespace: str, name: str) -> dict[str, Any]:
    """A Service of the cluster's name that someone else made: the operator will not take it."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"ports": [{"port": 80}], "selector": {"app": name}},
    }


class Kubectl:
    def __init__(self, binary: Path, kubeconfig: Path) -> None:
        self.base = [str(binary), "--kubeconfig", str(kubeconfig)]

    def __call__(self, *args: str, stdin: str | None = None) -> str:
        out = subprocess.run(
            [*self.base, *args], input=stdin, capture_output=True, text=True, timeout=60
        )
        if out.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)}: {out.stderr}")
        return out.stdout

    def apply(self, objects: list[dict[str, Any]]) -> None:
        text = yaml.safe_dump_all(objects)
        self(
            "apply", "--server-side", "--field-manager", "dashboard-picture", "-f", "-", stdin=text
        )


def _play(kubectl: Kubectl, step: dict[str, Any]) -> None:
    for namespace, name, replicas in step.get("create", []):
        if step.get("block"):
            kubectl.apply([_blocking_service(namespace, name)])
        kubectl.apply(_cluster_objects(namespace, name, replicas, bool(step.get("bad"))))
    if "patch" in step:
        namespace, name, spec = step["patch"]
        body = json.dumps({"spec": spec})
        kubectl("patch", "-n", namespace, "abx", name, "--type", "merge", "-p", body)


def _kept(metrics: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in metrics.items() if k.startswith(KEPT)}


def _scrape_while_playing(
    kubectl: Kubectl, scrape: Callable[[], dict[str, float]]
) -> dict[str, Any]:
    start = time.monotonic()
    pending = list(SCENARIO)
    events, scrapes = [], []
    while (now := time.monotonic() - start) <= DURATION:
        while pending and pending[0][0] <= now:
            at, label, step = pending.pop(0)
            _play(kubectl, step)
            if label:
                events.append({"t": round(at, 1), "label": label})
        scrapes.append({"t": round(now, 2), "series": _kept(scrape())})
        # The next scrape on the grid, not INTERVAL after this one ended (a scrape takes time).
        time.sleep(max(0.0, INTERVAL * len(scrapes) - (time.monotonic() - start)))
    return {"interval_s": INTERVAL, "events": events, "scrapes": scrapes}


@contextmanager
def _running_operator(kubeconfig: Path, log: Path) -> Iterator[Any]:
    from aidbox_sandbox.operator import OperatorProcess

    operator = OperatorProcess(kubeconfig, log, args=["--all-namespaces", "--leader-elect"])
    operator.start()
    try:
        yield operator
    finally:
        operator.stop()


def record(out: Path) -> None:
    from aidbox_sandbox import Sandbox

    box = Sandbox()
    with box.session() as sandbox:
        kubectl = Kubectl(sandbox.bin_dir / "kubectl", sandbox.kubeconfig)
        for crd in ("aidboxcluster.yaml", "aidboxreleasechannel.yaml"):
            kubectl("apply", "--server-side", "-f", str(REPO / "crds" / crd))
        kubectl("wait", "--for=condition=Established", "crd/aidboxclusters.aidbox.io")
        for namespace in ("fleet-a", "fleet-b"):
            kubectl.apply(
                [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}]
            )
        # Beside the state folder, which `down` removes.
        log = sandbox.state_dir.parent / "dashboard-operator.log"
        try:
            with _running_operator(sandbox.kubeconfig, log) as operator:
                recorded = _scrape_while_playing(kubectl, operator.metrics)
        finally:
            kubectl("delete", "namespace", "fleet-a", "fleet-b", "--wait=false")
    out.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(recorded, separators=(",", ":"), sort_keys=True) + "\n"
    out.write_bytes(gzip.compress(text.encode(), mtime=0))
    print(f"{out}: {len(recorded['scrapes'])} scrapes; operator log {log}")


# ---------------------------------------------------------------- PromQL, evaluated directly

_SERIES = re.compile(r"^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?$")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


def parse(series: dict[str, float]) -> list[Sample]:
    samples = []
    for key, value in series.items():
        match = _SERIES.match(key)
        if match:
            labels = dict(_LABEL.findall(match[2] or ""))
            samples.append(Sample(match[1], labels, value))
    return samples


class Recording:
    def __init__(self, data: dict[str, Any]) -> None:
        self.events: list[dict[str, Any]] = data["events"]
        self.times = [s["t"] for s in data["scrapes"]]
        self.at = [parse(s["series"]) for s in data["scrapes"]]

    def of(self, i: int, name: str) -> list[Sample]:
        return [s for s in self.at[i] if s.name == name]

    def by(self, i: int, name: str, label: str, op: str = "sum") -> dict[str, float]:
        """sum by (label) (name), or count by (label) (name)."""
        groups: dict[str, float] = defaultdict(float)
        for s in self.of(i, name):
            groups[s.labels.get(label, "")] += 1 if op == "count" else s.value
        return dict(groups)

    def rate_by(self, i: int, name: str, label: str) -> dict[str, float]:
        """sum by (label) (rate(name[RATE_WINDOW])): the increase over the window per second."""
        j = max((k for k in range(i) if self.times[i] - self.times[k] >= RATE_WINDOW), default=0)
        if j == i:
            return {}
        now, before = self.by(i, name, label), self.by(j, name, label)
        span = self.times[i] - self.times[j]
        return {k: max(0.0, v - before.get(k, 0.0)) / span for k, v in now.items()}

    def over_time(self, f: Callable[[int], dict[str, float]]) -> dict[str, list[float]]:
        """A panel's series over the recording: one list per legend, 0 where it had no value."""
        points = [f(i) for i in range(len(self.times))]
        legends = sorted({k for p in points for k in p})
        return {k: [p.get(k, 0.0) for p in points] for k in legends}


def stats(rec: Recording, i: int) -> dict[str, float]:
    """The six stat panels at scrape i, by title."""
    ready = rec.of(i, "aidbox_cluster_ready")
    return {
        "Clusters": len(rec.of(i, "aidbox_cluster_info")),
        "Ready": sum(s.value for s in ready),
        "Not ready": sum(1 for s in ready if s.value == 0),
        "Stalled": len(rec.of(i, "aidbox_cluster_stalled")),
        "Upgrading": sum(s.value for s in rec.of(i, "aidbox_cluster_upgrading")),
        "Leading replicas": sum(s.value for s in rec.of(i, "aidbox_operator_leader")),
    }


# The panels drawn, with the query each is computed for: checked against the dashboard file.
QUERIES = {
    "Clusters": 'count(aidbox_cluster_info{namespace=~"$namespace", name=~"$cluster"})',
    "Ready": 'sum(aidbox_cluster_ready{namespace=~"$namespace", name=~"$cluster"})',
    "Not ready": 'count(aidbox_cluster_ready{namespace=~"$namespace", name=~"$cluster"} == 0)',
    "Stalled": 'count(aidbox_cluster_stalled{namespace=~"$namespace", name=~"$cluster"})',
    "Upgrading": 'sum(aidbox_cluster_upgrading{namespace=~"$namespace", name=~"$cluster"})',
    "Leading replicas": "sum(aidbox_operator_leader)",
    "Pods by release": (
        'sum by (version) (aidbox_cluster_pods{namespace=~"$namespace", name=~"$cluster"})'
    ),
    "Clusters by phase": "sum by (phase) (aidbox_operator_clusters)",
    "Stalled clusters by reason": (
        'count by (reason) (aidbox_cluster_stalled{namespace=~"$namespace", name=~"$cluster"})'
    ),
    "Reconciles by result": (
        "sum by (result) (rate(aidbox_operator_reconciles_total[$__rate_interval]))"
    ),
    "Ready pods / wanted": (
        'aidbox_cluster_replicas_ready{namespace=~"$namespace", name=~"$cluster"}'
    ),
    "Work queue and API requests": (
        "sum by (verb) (rate(aidbox_operator_api_requests_total[$__rate_interval]))"
    ),
}


def check_queries(dashboard: dict[str, Any]) -> None:
    found: dict[str, list[str]] = defaultdict(list)
    for panel in dashboard["panels"]:
        found[panel["title"]] += [t["expr"] for t in panel.get("targets", [])]
    for title, expr in QUERIES.items():
        if expr not in found[title]:
            raise SystemExit(f"{DASHBOARD}: panel {title!r} no longer queries {expr!r}")


# ---------------------------------------------------------------- the picture

GREEN, RED, ORANGE, BLUE = "#37872d", "#c4162a", "#e0752d", "#1f60c4"


def _tile(ax: Any, title: str, value: float) -> None:
    bad = title in ("Not ready", "Stalled") and value > 0
    color = RED if bad else ORANGE if title == "Upgrading" and value > 0 else GREEN
    if title in ("Clusters", "Leading replicas"):
        color = BLUE
    ax.set_facecolor(color)
    ax.text(0.5, 0.42, f"{value:g}", color="white", fontsize=26, ha="center", va="center")
    ax.text(0.5, 0.88, title, color="white", fontsize=10, ha="center", va="center")
    ax.set_xticks([])
    ax.set_yticks([])


def _table(ax: Any, rec: Recording, i: int) -> None:
    ready = {
        (s.labels["namespace"], s.labels["name"]): s.value
        for s in rec.of(i, "aidbox_cluster_replicas_ready")
    }
    wanted = {
        (s.labels["namespace"], s.labels["name"]): s.value
        for s in rec.of(i, "aidbox_cluster_replicas_desired")
    }
    rows = []
    for s in sorted(
        rec.of(i, "aidbox_cluster_info"), key=lambda s: (s.labels["namespace"], s.labels["name"])
    ):
        key = (s.labels["namespace"], s.labels["name"])
        pods = f"{ready.get(key, 0):g}/{wanted.get(key, 0):g}"
        rows.append([*key, s.labels["phase"], s.labels["version"], pods])
    ax.axis("off")
    ax.set_title("Clusters", loc="left", fontsize=10)
    if rows:
        table = ax.table(
            rows,
            colLabels=["namespace", "name", "phase", "version", "pods ready"],
            loc="upper center",
            cellLoc="left",
        )
        table.auto_set_font_size(False)
        table.set_fontsize(9)
        table.scale(1, 1.3)


def _pie(ax: Any, rec: Recording, i: int) -> None:
    pods = rec.by(i, "aidbox_cluster_pods", "version")
    ax.set_title("Pods by release", loc="left", fontsize=10)
    if pods:
        labels = [f"{v} ({n:g})" for v, n in pods.items()]
        ax.pie(
            list(pods.values()),
            labels=labels,
            textprops={"fontsize": 9},
            wedgeprops={"width": 0.45},
        )


def _lines(
    ax: Any,
    rec: Recording,
    title: str,
    series: dict[str, list[float]],
    styles: dict[str, str] | None = None,
) -> None:
    for legend, values in series.items():
        ax.plot(rec.times, values, (styles or {}).get(legend, "-"), label=legend, linewidth=1.4)
    for n, event in enumerate(rec.events, start=1):
        ax.axvline(event["t"], color="gray", linestyle=":", linewidth=0.8)
        ax.text(event["t"] + 1, 0.97, str(n), transform=ax.get_xaxis_transform(), fontsize=7)
    ax.set_title(title, loc="left", fontsize=10)
    ax.grid(alpha=0.3)
    ax.tick_params(labelsize=8)
    if series:
        ax.legend(fontsize=7, loc="upper left", ncol=2)


def _ready_pods(ax: Any, rec: Recording) -> None:
    """Each cluster's ready pods (solid) and the pods its spec wants (dashed), one colour each."""

    def per_cluster(metric: str) -> dict[str, list[float]]:
        return rec.over_time(lambda i: {s.labels["name"]: s.value for s in rec.of(i, metric)})

    ready, wanted = (
        per_cluster("aidbox_cluster_replicas_ready"),
        per_cluster("aidbox_cluster_replicas_desired"),
    )
    for n, (name, values) in enumerate(sorted(wanted.items())):
        color = f"C{n}"
        ax.plot(
            rec.times, ready.get(name, [0.0] * len(values)), color=color, label=name, linewidth=1.4
        )
        ax.plot(rec.times, values, color=color, linestyle="--", linewidth=0.9)
    _lines(ax, rec, "Ready pods (solid) / wanted (dashed)", {})
    ax.legend(fontsize=7, loc="upper left", ncol=3)


def _caption(rec: Recording) -> str:
    steps = [f"{n} at {e['t']:g} s: {e['label']}" for n, e in enumerate(rec.events, start=1)]
    return "Dotted lines: " + "; ".join(steps)


def _nonzero(series: dict[str, list[float]]) -> dict[str, list[float]]:
    return {k: v for k, v in series.items() if any(v)}


def _operator_row(fig: Any, grid: Any, rec: Recording) -> None:
    stalled = rec.over_time(lambda i: rec.by(i, "aidbox_cluster_stalled", "reason", "count"))
    _lines(fig.add_subplot(grid[3, :4]), rec, "Stalled clusters by reason", stalled)
    reconciles = rec.over_time(
        lambda i: rec.rate_by(i, "aidbox_operator_reconciles_total", "result")
    )
    _lines(fig.add_subplot(grid[3, 4:8]), rec, "Reconciles by result (/s)", reconciles)
    work = rec.over_time(
        lambda i: {
            f"{k} /s": v
            for k, v in rec.rate_by(i, "aidbox_operator_api_requests_total", "verb").items()
        }
    )
    work["queue depth"] = [
        max((s.value for s in rec.of(i, "aidbox_operator_queue_depth")), default=0)
        for i in range(len(rec.times))
    ]
    _lines(fig.add_subplot(grid[3, 8:]), rec, "Work queue and API requests", work)


def draw(data: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rec, last = Recording(data), len(data["scrapes"]) - 1
    fig = plt.figure(figsize=(14, 9.5))
    grid = fig.add_gridspec(4, 12, height_ratios=[0.5, 1.3, 1.3, 1.3], hspace=0.5, wspace=0.7)
    fig.subplots_adjust(left=0.03, right=0.99, top=0.94, bottom=0.07)
    for n, (title, value) in enumerate(stats(rec, last).items()):
        _tile(fig.add_subplot(grid[0, 2 * n : 2 * n + 2]), title, value)
    _table(fig.add_subplot(grid[1, :8]), rec, last)
    _pie(fig.add_subplot(grid[1, 8:]), rec, last)
    phases = rec.over_time(lambda i: rec.by(i, "aidbox_operator_clusters", "phase"))
    _lines(fig.add_subplot(grid[2, :6]), rec, "Clusters by phase", _nonzero(phases))
    _ready_pods(fig.add_subplot(grid[2, 6:]), rec)
    _operator_row(fig, grid, rec)
    fig.suptitle(
        "Aidbox fleet (deploy/monitoring/dashboards/aidbox-fleet.json), from a real run: the "
        f"operator on the sandbox, /metrics scraped every {data['interval_s']:g} s; x: seconds; "
        "tiles, table and pie: the last scrape",
        fontsize=10,
    )
    fig.text(0.03, 0.012, _caption(rec), fontsize=8, color="dimgray")
    fig.savefig(out, dpi=72)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("action", choices=["record", "draw", "both"], nargs="?", default="both")
    parser.add_argument("--samples", type=Path, default=SAMPLES)
    parser.add_argument("--out", type=Path, default=PICTURE)
    args = parser.parse_args(argv)
    check_queries(json.loads(DASHBOARD.read_text()))
    if args.action in ("record", "both"):
        record(args.samples)
    if args.action in ("draw", "both"):
        draw(json.loads(gzip.decompress(args.samples.read_bytes())), args.out)
        print(f"{args.out}: {args.out.stat().st_size // 1024} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
