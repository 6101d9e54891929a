"""Plots of a results file (latest.json, upgrade-1000.json, ...), drawn from the JSON alone, so
`python bench/report.py --plots` redraws them for every committed result without running the
benchmark. One PNG per part of the file: <stem>-fleet.png (the fleet runs), -surroundings,
-upgrade, -channel; the markdown table of the same stem links them under a `Plots` heading."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

MARK = "<!-- plots: written by bench/report.py --plots -->"
DPI = 90
OPERATOR, BASELINE = "tab:blue", "tab:gray"


def _pyplot() -> Any | None:
    try:
        import matplotlib
    except ImportError:
        # A missing plot library must not cost a run's table; the JSON redraws them later.
        print("matplotlib is not installed: no plots (pip install -e '.[bench]')")
        return None

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def _bars(ax: Any, groups: list[str], series: dict[str, list[float | None]]) -> None:
    """Grouped bars: one group per label in `groups`, one bar per series, values on top."""
    width = 0.8 / max(len(series), 1)
    for i, (label, values) in enumerate(series.items()):
        xs = [g + (i - (len(series) - 1) / 2) * width for g in range(len(groups))]
        heights = [v or 0 for v in values]
        bars = ax.bar(xs, heights, width, label=label)
        ax.bar_label(bars, labels=[_short(v) for v in values], fontsize=7, padding=1)
    ax.set_xticks(range(len(groups)), groups, fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)


def _short(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"


def fleet(results: dict[str, Any], plt: Any) -> Any:
    runs = results.get("runs") or []
    if not runs:
        return None
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    metrics = [("whole fleet", "operator_s", "baseline_s")]
    metrics += [("one cluster p50", "ready_p50_s", "baseline_ready_p50_s")]
    metrics += [("one cluster p99", "ready_p99_s", "baseline_ready_p99_s")]
    picks = [(run, metric) for run in runs for metric in metrics]
    _bars(
        left,
        [f"{label}\nN={run['n']}" for run, (label, _, _) in picks],
        {
            "operator": [run.get(op) for run, (_, op, _) in picks],
            "baseline SSA": [run.get(base) for run, (_, _, base) in picks],
        },
    )
    left.set_title("Create to Ready (s): operator vs applying the same manifests", fontsize=9)
    last = runs[-1]
    parts = sorted(set(last.get("burst_cpu_cores", {})) | set(last.get("baseline_cpu_cores", {})))
    _bars(
        right,
        [p.replace("kube-", "kube-\n") for p in parts],
        {
            "with the operator": [last.get("burst_cpu_cores", {}).get(p) for p in parts],
            "baseline SSA": [last.get("baseline_cpu_cores", {}).get(p) for p in parts],
        },
    )
    right.set_title(f"CPU while N={last['n']} clusters are created (cores of 2)", fontsize=9)
    return fig


def surroundings(results: dict[str, Any], plt: Any) -> Any:
    sur = results.get("surroundings")
    if not sur:
        return None
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4), width_ratios=(3, 1))
    keys = [
        ("rss_steady_mb", "steady"),
        ("rss_30s_mb", "30 s after restart"),
        ("rss_peak_mb", "peak"),
    ]
    _bars(
        left,
        [label for _, label in keys],
        {
            f"without the {sur['unrelated_each']} x 3 unrelated objects": [
                sur["without"].get(k) for k, _ in keys
            ],
            "with them": [sur["with"].get(k) for k, _ in keys],
        },
    )
    left.set_title(f"Operator RSS (MB), {sur['clusters']} AidboxClusters", fontsize=9)
    _bars(
        right,
        ["in sync after restart"],
        {"without": [sur["without"].get("in_sync_s")], "with": [sur["with"].get("in_sync_s")]},
    )
    right.set_title("Seconds", fontsize=9)
    return fig


def upgrade(results: dict[str, Any], plt: Any) -> Any:
    out = results.get("operator_upgrade")
    if not out:
        return None
    fig, ax = plt.subplots(figsize=(11, 4))
    for phase in out["phases"]:
        rolling = phase.get("rolling_per_second") or []
        label = f"bound {phase['bound']}: fleet done in {phase['fleet_s']:.0f} s"
        ax.plot(range(len(rolling)), rolling, label=label, linewidth=1.2)
    ax.set_yscale("symlog", linthresh=1)
    ticks = [0, 1, 5, 20, 100, 1000]
    ax.set_yticks(ticks, [str(t) for t in ticks])
    ax.set_xlabel("seconds since the new operator release started")
    ax.set_ylabel("clusters rolling at once")
    ax.set_title(
        f"Operator upgrade over {out['n']} clusters, per --max-operator-rollouts bound (0: none)",
        fontsize=9,
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def channel(results: dict[str, Any], plt: Any) -> Any:
    out = results.get("channel")
    if not out:
        return None
    waves = out["waves"]
    fig, ax = plt.subplots(figsize=(11, 1.2 + 0.6 * len(waves)))
    for i, wave in enumerate(waves):
        start, first, done = wave["started_s"], wave["first_change_s"], wave["done_s"]
        ax.barh(i, done - start, left=start, color=OPERATOR, alpha=0.7)
        ax.plot([first], [i], "k|", markersize=14)
        ax.text(done + 3, i, f"{wave['clusters']} clusters, done at {done:.0f} s", va="center")
    ax.set_yticks(range(len(waves)), [w["name"] for w in waves])
    ax.invert_yaxis()
    ax.set_xlim(0, out["total_s"] * 1.3)
    ax.set_xlabel("seconds since the channel moved (| first Deployment changed)")
    ax.set_title(f"Release channel: {out['n']} clusters move from {out['from']} to {out['to']}")
    ax.grid(axis="x", alpha=0.3)
    return fig


PARTS: dict[str, Callable[[dict[str, Any], Any], Any]] = {
    "fleet": fleet,
    "surroundings": surroundings,
    "upgrade": upgrade,
    "channel": channel,
}


def write_plots(results: dict[str, Any], out_dir: Path, stem: str) -> list[Path]:
    """Draw each part the results have; returns the PNGs written."""
    plt = _pyplot()
    if plt is None:
        return []
    written = []
    for part, draw in PARTS.items():
        fig = draw(results, plt)
        if fig is None:
            continue
        fig.tight_layout()
        path = out_dir / f"{stem}-{part}.png"
        fig.savefig(path, dpi=DPI)
        plt.close(fig)
        written.append(path)
    return written


def with_links(markdown: str, pngs: list[Path]) -> str:
    """The table text with its `Plots` section (replaced, never repeated) linking `pngs`."""
    body = markdown.split(f"\n{MARK}\n")[0].rstrip("\n") + "\n"
    if not pngs:
        return body
    links = "\n\n".join(f"![{p.stem}]({p.name})" for p in pngs)
    return f"{body}\n{MARK}\n## Plots\n\n{links}\n"
