"""Why a generation of the spec is not (or not yet) applied, and the rules that decide it.

Three kinds, because GitOps tools must tell them apart (kstatus conventions):
- `refused`: this generation can never be applied as written (invalid spec, unsupported version,
  a child the API server refused, an object in the way that the operator does not own, a half-set
  key pair). Stalled=True; the verdict is final for the generation, so observedGeneration moves on.
- `held`: waiting for something outside the spec (a missing ConfigMap). Reconciling=True;
  observedGeneration stays where it was.
  A refusal that the user can lift without a new generation (an annotation, such as the one that
  allows a downgrade) is not final: observedGeneration stays, so no tool reads it as settled.
- `paused`: a person asked the operator to hold every change. Reconciling=True while a change is
  pending; not Degraded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import ValidationError

from aidbox_operator.model import AidboxCluster, parse_image_version
from aidbox_operator.model.constants import MIN_HA_VERSION, PAUSED_ANNOTATION

BlockerKind = Literal["refused", "held", "paused"]
# Refusals that are about the spec itself (phase Invalid); the others are obstacles in the
# namespace (phase Degraded).
SPEC_REASONS = frozenset({"InvalidSpec", "UnsupportedVersion", "ApplyFailed", "AuthKeysIncomplete"})


@dataclass(frozen=True)
class Blocker:
    reason: str
    message: str
    kind: BlockerKind
    # A refusal that stands for this generation whatever else changes (see the module's note).
    final: bool = True

    @property
    def stalls(self) -> bool:
        return self.kind == "refused"

    @property
    def degrades(self) -> bool:
        return self.kind != "paused"

    @property
    def invalid(self) -> bool:
        return self.kind == "refused" and self.reason in SPEC_REASONS


def version_blocker(cluster: AidboxCluster, replicas: int) -> Blocker | None:
    """Aidbox runs several replicas side by side only from release 2208 on."""
    version = parse_image_version(cluster.spec.image)
    year, month = MIN_HA_VERSION
    if replicas > 1 and version.older_than(year, month):
        return Blocker(
            "UnsupportedVersion",
            f"image {cluster.spec.image} runs Aidbox {version.tag}, which cannot run "
            f"{replicas} replicas side by side (needs {year:02d}{month:02d} or newer): use a "
            "newer image or replicas: 1; the running Deployment is left as it was",
            "refused",
        )
    return None


def _spellings(*words: str) -> frozenset[str]:
    return frozenset(v for w in words for v in (w, w.capitalize(), w.upper()))


# How people write yes and no in an annotation (YAML 1.1 and kubectl habits). Exact values:
# the Argo CD health script, which has no string library, lists the same ones.
NOT_PAUSED = _spellings("", "0", "false", "no", "n", "off")
PAUSED = _spellings("1", "true", "yes", "y", "on")


def pause_blocker(cluster: AidboxCluster) -> Blocker | None:
    """Paused for any spelling of yes. A value that is neither yes nor no pauses too, saying
    so: someone meant something by it, and not touching the pods is the safe reading."""
    value = cluster.metadata.annotations.get(PAUSED_ANNOTATION)
    if value is None or value in NOT_PAUSED:
        return None
    message = (
        f"reconciliation is paused by the {PAUSED_ANNOTATION} annotation: no change is applied "
        "or repaired until it is removed; status is still reported"
    )
    if value not in PAUSED:
        message = (
            f'{PAUSED_ANNOTATION}="{value[:64]}" is neither true nor false (also accepted: '
            f"yes/no, on/off, 1/0), so it is read as true: {message}"
        )
    return Blocker("Paused", message, "paused")


def missing_blocker(namespace: str, missing: list[str]) -> Blocker | None:
    if not missing:
        return None
    return Blocker(
        "MissingReference",
        f"{', '.join(missing)} not found in namespace {namespace}; the rollout is held and "
        "proceeds as soon as it exists",
        "held",
    )


def invalid_spec_blocker(err: ValidationError) -> Blocker:
    parts = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors()[:5]]
    return Blocker("InvalidSpec", "invalid spec: " + "; ".join(parts), "refused")
