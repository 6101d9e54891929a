"""Percentiles, the markdown table and the time-to-Ready plot.

`python bench/report.py --plots` redraws the plots of every results file in bench/results
(bench/plots.py) from its JSON, without running the benchmark, and links them from the markdown
table of the same name."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def percentile(values: list[float], q: float) -> float | None:
    """Linear-interpolated percentile (q in 0..100), like numpy's default."""
    if not values:
        return None
    data = sorted(values)
    pos = (len(data) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def r(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


# (key in a run, label, target as shown)
ROWS: list[tuple[str, str, str]] = [
    ("operator_s", "Convergence, operator (s)", ""),
    ("baseline_s", "Convergence, baseline SSA (s)", ""),
    ("convergence_ratio", "Ratio operator/baseline", "<= 1.1"),
    ("ready_p50_s", "Per-cluster time-to-Ready p50 (s)", ""),
    ("ready_p99_s", "Per-cluster time-to-Ready p99 (s)", ""),
    ("baseline_ready_p50_s", "Baseline time-to-ready p50 (s)", ""),
    ("baseline_ready_p99_s", "Baseline time-to-ready p99 (s)", ""),
    ("requests_by_verb", "Operator requests in the burst, by verb", ""),
    ("requests_per_cluster", "Operator requests per cluster, by verb", ""),
    ("idle_requests_by_verb", "Requests during the idle window", ""),
    ("idle_writes", "Writes during the idle window", "0"),
    ("rss_idle_mb", "Operator RSS, 0 clusters (MB)", ""),
    ("rss_converged_mb", "Operator RSS, N clusters, at convergence (MB)", ""),
    ("rss_loaded_mb", "Operator RSS, N clusters, after the idle window (MB)", ""),
    ("rss_peak_mb", "Operator RSS, peak (MB)", ""),
    ("rss_per_cluster_kb", "RSS growth per cluster, after the idle window (KB)", "<= 40"),
    ("drift_repair_p50_s", "Drift repair p50 (s)", ""),
    ("drift_repair_p99_s", "Drift repair p99 (s)", "< 1"),
    ("config_rollout_p50_s", "Config rollout p50 (s)", ""),
    ("config_rollout_p99_s", "Config rollout p99 (s)", "< 1"),
    ("restart_s", "Restart: all confirmed in sync (s)", "< 30 at N=1000, <= 90 at N=5000"),
    ("restart_writes", "Restart: writes", "0"),
    ("operator_cpu_cores_burst", "Operator CPU in the burst (cores)", ""),
    ("apiserver_cpu_cores_burst", "kube-apiserver CPU in the burst (cores)", ""),
]


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, dict):
        return ", ".join(f"{k} {_num(v)}" for k, v in value.items()) or "none"
    return _num(value)


def _num(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


# (path in results["surroundings"], label, target)
SURROUNDINGS_ROWS: list[tuple[str, str, str]] = [
    ("without.rss_steady_mb", "RSS at steady state, without (MB)", ""),
    ("with.rss_steady_mb", "RSS at steady state, with (MB)", ""),
    ("delta_rss_steady_mb", "Difference (MB)", "<= 10"),
    ("without.rss_30s_mb", "RSS 30 s after a restart, without (MB)", ""),
    ("with.rss_30s_mb", "RSS 30 s after a restart, with (MB)", ""),
    ("delta_rss_30s_mb", "Difference (MB)", ""),
    ("without.rss_peak_mb", "Peak RSS in the 30 s after a restart, without (MB)", ""),
    ("with.rss_peak_mb", "Peak RSS in the 30 s after a restart, with (MB)", ""),
    ("delta_rss_peak_mb", "Difference (MB)", "<= 10"),
    ("without.in_sync_s", "Restart: all confirmed in sync, without (s)", ""),
    ("with.in_sync_s", "Restart: all confirmed in sync, with (s)", ""),
    ("with.writes", "Restart writes, with", "0"),
    ("without.received_bytes", "Bytes received in the 30 s after a restart, without", ""),
    ("with.received_bytes", "Bytes received in the 30 s after a restart, with", ""),
    ("without.tcp_received_bytes", "TCP bytes from the API server in those 30 s, without", ""),
    ("with.tcp_received_bytes", "TCP bytes from the API server in those 30 s, with", ""),
    ("creation_window.seconds", "Creating the unrelated objects (s)", ""),
    ("creation_window.operator_cpu_s", "Operator CPU while they are created (s)", ""),
    ("creation_window.apiserver_cpu_s", "kube-apiserver CPU in the same window (s)", ""),
    ("creation_window.operator_vs_apiserver_cpu_pct", "Operator / kube-apiserver CPU (%)", "< 5"),
    ("creation_window.received_bytes", "Bytes received while they are created", ""),
    ("creation_window.tcp_received_bytes", "TCP bytes from the API server meanwhile", ""),
    ("creation_window.requests_by_verb", "Operator requests meanwhile", ""),
]


def _dig(data: dict[str, Any], path: str) -> Any:
    for part in path.split("."):
        if not isinstance(data, dict):
            return None
        data = data.get(part)  # type: ignore[assignment]
    return data


def surroundings_markdown(results: dict[str, Any]) -> str:
    sur = results.get("surroundings")
    if not sur:
        return ""
    lines = [
        f"Surroundings: {sur['unrelated_each']} unrelated Secrets (~130 KB), ConfigMaps "
        f"(~50 KB) and Pods next to {sur['clusters']} AidboxClusters, operator cluster-wide.",
        "",
        "| Metric | Value | Target |",
        "|---|---|---|",
    ]
    for path, label, target in SURROUNDINGS_ROWS:
        lines.append(f"| {label} | {cell(_dig(sur, path))} | {target} |")
    return "\n".join(lines) + "\n"


def markdown(results: dict[str, Any]) -> str:
    runs = results["runs"]
    head = "| Metric | " + " | ".join(f"N={run['n']}" for run in runs) + " | Target |"
    sep = "|---|" + "---|" * len(runs) + "---|"
    lines = [head, sep] if runs else []
    for key, label, target in ROWS if runs else []:
        cells = " | ".join(cell(run.get(key)) for run in runs)
        lines.append(f"| {label} | {cells} | {target} |")
    m, v = results["machine"], results["versions"]
    lines += [
        "",
        f"Machine: {m['cores']} cores ({m.get('cpu_model', '?')}), {m['memory_gb']} GB; "
        f"{m['platform']}.",
        "Versions: " + ", ".join(f"{k} {val}" for k, val in v.items()) + ".",
        f"Command: `{results['command']}`; took {results.get('total_s', 0):.0f} s.",
    ]
    extra = surroundings_markdown(results)
    return "\n".join(lines) + "\n" + ("\n" + extra if extra else "")


def plot(series: dict[int, dict[str, list[float]]], out: Path) -> bool:
    """Sorted per-cluster time-to-Ready curves, operator vs baseline, one panel per N."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot (pip install '.[bench]')")
        return False
    sizes = sorted(series)
    fig, axes = plt.subplots(1, len(sizes), figsize=(6 * len(sizes), 4.5), squeeze=False)
    for ax, n in zip(axes[0], sizes, strict=True):
        for label, values in series[n].items():
            data = sorted(values)
            if not data:
                continue
            xs = [100 * (i + 1) / len(data) for i in range(len(data))]
            ax.plot(xs, data, label=f"{label} (p99 {percentile(data, 99):.1f}s)")
        ax.set_title(f"N={n}: per-cluster time from create to Ready")
        ax.set_xlabel("clusters ready (%)")
        ax.set_ylabel("seconds since its create")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return True


def redraw(results_dir: Path) -> list[Path]:
    """Plots for each <stem>.json that has a <stem>.md table next to it; links them there."""
    from plots import with_links, write_plots

    written = []
    for source in sorted(results_dir.glob("*.json")):
        table = source.with_suffix(".md")
        if not table.exists():
            continue
        pngs = write_plots(json.loads(source.read_text()), results_dir, source.stem)
        table.write_text(with_links(table.read_text(), pngs))
        written += pngs
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Redraw the benchmark's plots from its JSON.")
    parser.add_argument("--plots", action="store_true", required=True)
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    for path in redraw(args.results):
        print(path)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    raise SystemExit(main())
