"""What `kubectl aidbox status` and `versions` print, from AidboxCluster bodies (pure)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from aidbox_operator.model.spec import DEFAULT_PORT

STATUS_HEADER = ("NAMESPACE", "NAME", "READY", "PHASE", "RELEASES", "URL", "REASON")
VERSIONS_HEADER = ("RELEASE", "PODS", "CLUSTERS")


def _condition(body: dict[str, Any], type_: str) -> dict[str, Any]:
    for cond in (body.get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_:
            return dict(cond)
    return {}


def reason(body: dict[str, Any]) -> str:
    """The one word that says why a cluster is not simply Ready: a final failure first, then
    why it is not Ready, then what a Ready cluster waits for (a queued rollout, its wave) or
    that it is paused (with nothing held it stays Ready, and only Progressing says so)."""
    stalled, ready = _condition(body, "Stalled"), _condition(body, "Ready")
    progressing = _condition(body, "Progressing")
    if stalled.get("status") == "True":
        return str(stalled.get("reason", ""))
    if ready.get("status") != "True":
        return str(ready.get("reason", "")) or "NotObserved"
    if progressing.get("status") == "True" or progressing.get("reason") == "Paused":
        return str(progressing.get("reason", ""))
    return ""


def releases(body: dict[str, Any]) -> str:
    """The releases the pods run ("2510.1x2,2510.2x1"), or the spec's when none is known."""
    status = body.get("status") or {}
    running: dict[str, int] = status.get("runningVersions") or {}
    if running:
        return ",".join(f"{v}x{n}" for v, n in sorted(running.items()))
    return str(status.get("version") or "-")


def url(body: dict[str, Any]) -> str:
    """Where users reach the cluster: its Ingress/HTTPRoute URL, else its Service in-cluster."""
    if served := (body.get("status") or {}).get("url"):
        return str(served)
    meta, spec = body["metadata"], body.get("spec") or {}
    port = (spec.get("service") or {}).get("port", DEFAULT_PORT)
    return f"http://{meta['name']}.{meta['namespace']}.svc:{port}"


def status_row(body: dict[str, Any]) -> tuple[str, ...]:
    meta, status = body["metadata"], body.get("status") or {}
    return (
        str(meta["namespace"]),
        str(meta["name"]),
        str(status.get("ready") or "-"),
        str(status.get("phase") or "Pending"),
        releases(body),
        url(body),
        reason(body) or "-",
    )


def versions_rows(bodies: list[dict[str, Any]]) -> list[tuple[str, ...]]:
    """One row per release: how many pods run it, and on which clusters."""
    pods: dict[str, int] = defaultdict(int)
    where: dict[str, list[str]] = defaultdict(list)
    for body in bodies:
        meta, status = body["metadata"], body.get("status") or {}
        running = dict(status.get("runningVersions") or {})
        if not running and status.get("version"):
            running = {str(status["version"]): 0}
        for release, count in running.items():
            pods[release] += int(count)
            where[release].append(f"{meta['namespace']}/{meta['name']}")
    return [(r, str(pods[r]), ",".join(sorted(where[r]))) for r in sorted(pods)]


def table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    """Columns as kubectl prints them: left-aligned, three spaces apart."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = ["   ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    head = "   ".join(c.ljust(w) for c, w in zip(header, widths, strict=True))
    return "\n".join(line.rstrip() for line in [head, *lines]) + "\n"
