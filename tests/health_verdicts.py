"""The health verdicts GitOps tools must reach for an AidboxCluster, and the means to compute them.

VERDICTS is the one table of truth: the unit tests assert it for hand-written objects, the
integration tests for live objects the real operator drove into each scenario, and README.md's
"Health verdicts" section must print exactly `verdict_table()`. kstatus is judged by the Go helper
in tools/kstatus (sigs.k8s.io/cli-utils, what Flux and kpt use), Argo CD by running
deploy/argocd/aidboxcluster-health.lua twice: in Argo CD's own VM (`argocd`: the Go helper in
tools/argocd-health, gopher-lua with only the libraries Argo CD opens and its conversions of the
object and the result) and in Lua 5.1 via lupa (`ArgoHealth`: in-process, cheap enough to poll
live objects). The unit tests require both to agree on every object they judge.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from lupa import lua51

from tools import argocd_health_verdicts, kstatus_verdicts

REPO = Path(__file__).resolve().parents[1]
LUA_SCRIPT = REPO / "deploy" / "argocd" / "aidboxcluster-health.lua"
CRD = REPO / "crds" / "aidboxcluster.yaml"
README = REPO / "README.md"
PAUSE_ANNOTATION = "aidbox.io/paused"


@dataclass(frozen=True)
class Verdict:
    scenario: str
    kstatus: str
    argocd: str


VERDICTS = (
    Verdict("new", "InProgress", "Progressing"),
    Verdict("ready", "Current", "Healthy"),
    Verdict("rolling out", "InProgress", "Progressing"),
    Verdict("spec changed", "InProgress", "Progressing"),
    Verdict("stuck rollout", "Failed", "Degraded"),
    Verdict("missing reference on a running cluster", "InProgress", "Progressing"),
    Verdict("paused with a pending change", "InProgress", "Suspended"),
    Verdict("refused child", "Failed", "Degraded"),
    Verdict("unsupported version", "Failed", "Degraded"),
    Verdict("upgrade in progress", "InProgress", "Progressing"),
    Verdict("upgrade failed", "Failed", "Degraded"),
    # The old pods serve; a quota may be freed by others: under way until the Deployment's
    # progress deadline, then a stuck rollout or failed upgrade.
    Verdict("new pods refused by a quota", "InProgress", "Progressing"),
    # kstatus reads a stale observedGeneration first; the refusal waits for an annotation (no
    # new generation), so observedGeneration stays and only Argo CD shows the Stalled reason.
    Verdict("refused downgrade", "InProgress", "Degraded"),
    Verdict("moving tag not resolved", "InProgress", "Progressing"),
    # The spec is in effect and every pod Ready: waiting to take a change nobody asked for at
    # this moment (an operator release's rendering, a channel's new release) is no failure.
    Verdict("operator rollout queued", "Current", "Healthy"),
    Verdict("waiting for its channel wave", "Current", "Healthy"),
    Verdict("behind a halted channel", "Current", "Healthy"),
    # Held like a missing reference: the old pods serve until an operator that handles
    # channels runs (or spec.channel goes); nothing the cluster itself can fix.
    Verdict("on a channel no operator handles", "InProgress", "Progressing"),
    # Everything else applied and serving; the route or monitor is made the moment its CRD
    # is installed: a warning (Degraded) on a healthy cluster, as with a single node.
    Verdict("route or monitor kind not installed", "Current", "Healthy"),
    # No pod serves and each says why: its database. Not the release's fault (no upgrade is
    # failed) and not the operator's to fix; it clears by itself once the database answers.
    Verdict("database unreachable", "Failed", "Degraded"),
    Verdict("database refuses the credentials", "Failed", "Degraded"),
)
SCENARIOS = tuple(v.scenario for v in VERDICTS)
EXPECTED = {v.scenario: v for v in VERDICTS}


def verdict_table() -> str:
    """The Markdown table README.md's "Health verdicts" section must contain."""
    rows = ["| scenario | kstatus | Argo CD |", "|---|---|---|"]
    rows += [f"| {v.scenario} | {v.kstatus} | {v.argocd} |" for v in VERDICTS]
    return "\n".join(rows)


def readme_verdict_table(readme: str) -> str:
    """The table under README.md's "Health verdicts" heading (empty when there is none)."""
    lines = readme.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == "## Health verdicts")
    except StopIteration:
        return ""
    table: list[str] = []
    for line in lines[start + 1 :]:
        if line.startswith("## "):
            break
        if line.startswith("|"):
            table.append(line.rstrip())
        elif table:
            break
    return "\n".join(table)


def kstatus(objects: list[dict[str, Any]]) -> list[str]:
    """kstatus' Status for each object (one helper process for all of them)."""
    return [v["status"] for v in kstatus_verdicts(objects)]


def kstatus_details(obj: dict[str, Any]) -> dict[str, Any]:
    return kstatus_verdicts([obj])[0]


def argocd(objects: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Argo CD's {"status", "message"} for each object, from the health script run in Argo CD's
    Lua VM (one helper process for all of them); with "error" too when the script failed, where
    Argo CD would show Unknown and the error."""
    return argocd_health_verdicts(LUA_SCRIPT, objects)


def argocd_failure(verdict: dict[str, str]) -> str:
    """Why the script failed for a verdict of `argocd`, empty when it did not."""
    if "error" not in verdict:
        return ""
    return f"the script failed in Argo CD's Lua VM: {verdict['error']}"


class ArgoHealth:
    """Runs the Argo CD health script in Lua 5.1 (lupa) as Argo CD calls it: `obj` set, the chunk
    returns hs. Stock Lua opens every standard library, Argo CD's VM does not (see `argocd`)."""

    def __init__(self, script: Path = LUA_SCRIPT) -> None:
        self.runtime = lua51.LuaRuntime(unpack_returned_tuples=True)
        self.chunk = self.runtime.compile(script.read_text())

    def __call__(self, obj: dict[str, Any]) -> dict[str, str]:
        self.runtime.globals().obj = self._to_lua(obj)
        hs = self.chunk()
        return {"status": str(hs["status"]), "message": str(hs["message"])}

    def _to_lua(self, value: Any) -> Any:
        # Argo CD hands the script the object decoded from JSON: maps and arrays become tables,
        # arrays indexed from 1 so that ipairs() works.
        if isinstance(value, dict):
            return self.runtime.table_from({k: self._to_lua(v) for k, v in value.items()})
        if isinstance(value, list):
            return self.runtime.table_from([self._to_lua(v) for v in value])
        return value


def crd_status_schema() -> dict[str, Any]:
    crd = yaml.safe_load(CRD.read_text())
    version = next(v for v in crd["spec"]["versions"] if v.get("storage"))
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]["properties"]["status"]
    return schema


def with_schema_defaults(value: Any, schema: dict[str, Any]) -> Any:
    """What the API server returns for `value` under a structural schema's defaults (object
    properties only, which is all the status schema uses); None stays None without a default."""
    if value is None:
        if "default" not in schema:
            return None
        value = copy.deepcopy(schema["default"])
    if isinstance(value, dict):
        for name, prop in (schema.get("properties") or {}).items():
            filled = with_schema_defaults(value.get(name), prop)
            if filled is not None:
                value[name] = filled
    return value


def as_json(obj: dict[str, Any]) -> str:
    return json.dumps(obj, indent=2, sort_keys=True)
