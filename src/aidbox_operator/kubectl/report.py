"""`kubectl aidbox report NAME`: a support bundle (tar.gz) of one cluster: the AidboxCluster,
its children and pods, the Events about them, and the operator's log lines about it. Secret
values never enter it (redact.py); the bundle's README says what was blanked."""

from __future__ import annotations

import io
import json
import tarfile
import time
from pathlib import Path
from typing import Any

import yaml

from aidbox_operator.kubectl.api import Kube
from aidbox_operator.kubectl.redact import blank, scrub, secret_needles


def _yaml(docs: list[dict[str, Any]]) -> str:
    return yaml.safe_dump_all(docs, sort_keys=False, width=100)


def about_cluster(line: str, namespace: str, name: str) -> bool:
    """Whether an operator log line (text or JSON format) concerns this cluster."""
    if f"[{namespace}/{name}]" in line:
        return True
    if not line.startswith("{"):
        return False
    try:
        entry = json.loads(line)
    except ValueError:
        return False
    return bool(entry.get("namespace") == namespace and entry.get("cluster") == name)


def _concerns(event: dict[str, Any], name: str) -> bool:
    involved = event.get("involvedObject") or {}
    target = str(involved.get("name", ""))
    return target == name or target.startswith(f"{name}-")


def _referenced_secrets(
    cluster: dict[str, Any], owned: dict[str, list[dict[str, Any]]]
) -> list[str]:
    """The Secrets whose values the bundle must not hold: the ones the pods' env comes from
    (spec.secretRef, by default named like the cluster, and spec.extraEnvFrom's), the
    generated keys, pull secrets."""
    spec = cluster.get("spec") or {}
    names = {str((spec.get("secretRef") or {}).get("name") or cluster["metadata"]["name"])}
    names |= {
        str((extra.get("secretRef") or {}).get("name", ""))
        for extra in spec.get("extraEnvFrom") or []
    }
    names |= {str(s["metadata"]["name"]) for s in owned.get("Secret", []) if "metadata" in s}
    names |= {str(s.get("name", "")) for s in spec.get("imagePullSecrets") or []}
    return sorted(n for n in names if n)


def collect(kube: Kube, namespace: str, name: str, operator_log: str | None) -> dict[str, str]:
    """The bundle's files, by name, Secret values already blanked."""
    cluster = kube.cluster(namespace, name)
    owned = kube.owned(namespace, name)
    events = sorted(
        (e for e in kube.events(namespace) if _concerns(e, name)),
        key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or ""),
    )
    log = kube.operator_log(3600) if operator_log is None else operator_log
    files = {
        "cluster.yaml": _yaml([scrub(cluster, "AidboxCluster")]),
        "children.yaml": _yaml(
            [
                {"kind": kind, **scrub(b, kind)}
                for kind, items in owned.items()
                if kind != "Pod"
                for b in items
            ]
        ),
        "pods.yaml": _yaml([{"kind": "Pod", **scrub(p, "Pod")} for p in owned.get("Pod", [])]),
        "events.yaml": _yaml([scrub(e, "Event") for e in events]),
        "operator.log": "".join(
            f"{line}\n" for line in log.splitlines() if about_cluster(line, namespace, name)
        ),
    }
    needles = secret_needles(kube.secret_values(namespace, _referenced_secrets(cluster, owned)))
    blanked = 0
    for file_name, text in files.items():
        files[file_name], count = blank(text, needles)
        blanked += count
    files["README.txt"] = _readme(namespace, name, files, blanked)
    return files


def _readme(namespace: str, name: str, files: dict[str, str], blanked: int) -> str:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    lines = [
        f"Support bundle of AidboxCluster {namespace}/{name}, made {stamp} by kubectl aidbox.",
        "Secrets appear by name and key names only; literal env values are blanked; "
        f"{blanked} further occurrence(s) of a Secret value were blanked.",
        "",
        *(f"{file_name}: {len(text.splitlines())} lines" for file_name, text in files.items()),
    ]
    return "\n".join(lines) + "\n"


def write_bundle(files: dict[str, str], path: Path, folder: str) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for file_name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"{folder}/{file_name}")
            info.size, info.mtime, info.mode = len(data), int(time.time()), 0o600
            tar.addfile(info, io.BytesIO(data))
