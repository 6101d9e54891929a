"""Release changes (pure): which release each pod runs, the newest release that has been Ready
against the database, the upgrade under way, whether it failed, and the downgrade guard.

Aidbox migrates its database forward when a new release starts and documents no way back, so
the record keeps only releases whose pods became Ready: a release that failed at start never
migrated anything the guard must protect, and going back from it is no downgrade.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from aidbox_operator.model import ClusterStatus, parse_image_version
from aidbox_operator.model.constants import ALLOW_DOWNGRADE_ANNOTATION
from aidbox_operator.model.status import PinnedImage, UpgradeStatus, VersionRecord
from aidbox_operator.model.version import parse_release
from aidbox_operator.status.blockers import Blocker
from aidbox_operator.status.observation import Observation, Rollout
from aidbox_operator.status.pods import FAILING_REASONS, PodSummary

ROLLING_REASON = (
    "spec.upgrade.strategy is Rolling: one pod of the new release starts first and runs the "
    "migrations while the old pods serve"
)
RECREATE_REASON = (
    "spec.upgrade.strategy is Recreate: every old pod stops before the new release starts, "
    "so two releases never share the database"
)


def release_name(image: str, pinned: PinnedImage | None) -> str:
    """The release an image runs, as far as the operator knows it: the pinned tag's version
    label, else the tag (a channel name when that is all there is)."""
    if not image:
        return ""
    if pinned is not None and image == pinned.image:
        return pinned.version or parse_image_version(pinned.requested).display
    return parse_image_version(image).display


def template_image(deployment: object) -> str:
    """The Aidbox container's image in a Deployment's pod template ("" without one)."""
    if not isinstance(deployment, dict):
        return ""
    containers = deployment["spec"]["template"]["spec"].get("containers") or [{}]
    return str(containers[0].get("image", ""))


def pod_annotation(deployment: object, key: str) -> str | None:
    """An annotation of a Deployment's pod template (None without it, or without one)."""
    if not isinstance(deployment, dict):
        return None
    template = deployment.get("spec", {}).get("template", {})
    value = (template.get("metadata", {}).get("annotations") or {}).get(key)
    return None if value is None else str(value)


def _ready(pods: tuple[PodSummary, ...]) -> list[PodSummary]:
    return [p for p in pods if p.ready and not p.terminating]


def pods_by_release(obs: Observation) -> dict[str, int]:
    """Pods that are not terminating, by the release their image (or its pin) names."""
    counts: dict[str, int] = {}
    for pod in obs.pods:
        if not pod.terminating:
            release = release_name(pod.image, obs.pinned) or "unknown"
            counts[release] = counts.get(release, 0) + 1
    return counts


def record_version(
    previous: VersionRecord | None, obs: Observation, now: str
) -> VersionRecord | None:
    """The newest release a ready pod has run, by its image or by its own /health."""
    best = previous
    newest = parse_release(previous.newest_ready) if previous else None
    seen = [(release_name(p.image, obs.pinned), p.image) for p in _ready(obs.pods)]
    seen += [(version, "") for version, _ in obs.versions]
    for text, image in seen:
        release = parse_release(text)
        if release is not None and (newest is None or release > newest):
            best = VersionRecord(newest_ready=text, image=image, recorded_at=now)
            newest = release
    return best


def downgrade_blocker(
    wanted_image: str,
    wanted_release: str,
    record: VersionRecord | None,
    annotations: dict[str, str],
) -> Blocker | None:
    """Refuse a release older than the newest one that has been Ready, unless the user named
    exactly that release in the override annotation. Unknown releases are not older."""
    if record is None:
        return None
    wanted, newest = parse_release(wanted_release), parse_release(record.newest_ready)
    if wanted is None or newest is None or wanted >= newest:
        return None
    if annotations.get(ALLOW_DOWNGRADE_ANNOTATION, "").strip() == wanted_release:
        return None
    return Blocker(
        "DowngradeRefused",
        f"spec.image {wanted_image} runs Aidbox {wanted_release}, older than "
        f"{record.newest_ready}, the newest release that has been Ready against this "
        "cluster's database; Aidbox migrates its database forward and has no downgrade path. "
        "The running pods are left as they are. To run it anyway, set the annotation "
        f'{ALLOW_DOWNGRADE_ANNOTATION}: "{wanted_release}"',
        "refused",
        final=False,
    )


def recreates(strategy: str, wanted_image: str, template_image: str | None, pods: Any) -> bool:
    """Whether this pass renders the Deployment with the Recreate strategy: only for a release
    change, and until no pod of another image is left (a terminating one included), so the
    Deployment controller never starts the new release beside the old one."""
    if strategy != "Recreate" or template_image is None:
        return False
    return template_image != wanted_image or any(p.image != wanted_image for p in pods)


def _strategy_of(deployment: dict[str, Any] | None) -> str:
    kind = ((deployment or {}).get("spec", {}).get("strategy") or {}).get("type")
    return "Recreate" if kind == "Recreate" else "Rolling"


def compute_upgrade(
    previous: ClusterStatus, obs: Observation, rollout: Rollout, image: str, now: str
) -> UpgradeStatus | None:
    """The release change under way: started when the pod template's image changed (status
    remembers the previous one across operator restarts), over when every pod runs the new
    image and the rollout is complete."""
    prior = previous.upgrade
    if not image:
        return None
    if prior is not None and prior.to_image == image:
        base = prior
    elif previous.image and previous.image != image:
        base = UpgradeStatus.model_validate(
            {
                # status.version was written with the image: a refreshed pin has replaced
                # the one that named the previous image by now.
                "from": previous.version or release_name(previous.image, previous.pinned_image),
                "to": release_name(image, obs.pinned),
                "fromImage": previous.image,
                "toImage": image,
                "started": now,
            }
        )
    else:
        return None
    live = [p for p in obs.pods if not p.terminating]
    if rollout.complete and all(p.image == image and p.ready for p in live):
        return None
    known = {base.from_image: base.from_version}
    strategy = _strategy_of(obs.deployment)
    if base.strategy == "Recreate" and all(p.image == image for p in obs.pods):
        # Recreate's stop phase is over (no old pod left), so the Deployment rolls again for
        # later changes; the new release still starts without the old one beside it.
        strategy = "Recreate"
    return base.model_copy(
        update={
            "pods": dict(
                Counter(known.get(p.image) or release_name(p.image, obs.pinned) for p in live)
            ),
            "strategy": strategy,
            "reason": RECREATE_REASON if strategy == "Recreate" else ROLLING_REASON,
        }
    )


def upgrade_failure(
    upgrade: UpgradeStatus, obs: Observation, rollout: Rollout, record: VersionRecord | None
) -> str | None:
    """Why the new release does not start, with what the user can do; None while it may."""
    new = [p for p in obs.pods if p.image == upgrade.to_image and not p.terminating]
    if any(p.database and not p.ready for p in new):
        # Its database stopped it, not the release: said as a database problem, not final.
        return None
    failing = [p for p in new if not p.ready and (p.restarts > 0 or p.reason in FAILING_REASONS)]
    if not failing and not (rollout.stuck and not any(p.ready for p in new)):
        return None
    detail = "; ".join(
        f"pod {p.name}: {p.last_exit or p.reason or 'not ready'}" for p in failing[:2]
    )
    old = [p for p in _ready(obs.pods) if p.image != upgrade.to_image]
    serving = (
        f"{len(old)} pod(s) of {upgrade.from_version} keep serving"
        if old
        else "no pod of the previous release is left serving"
    )
    if not detail and rollout.refused:
        detail = f"the API server refuses its pods ({rollout.refused})"
    text = (
        f"upgrade from {upgrade.from_version} to {upgrade.to_version} failed: "
        f"{detail or 'its first pod did not become ready in time'}; {serving}. Fix forward "
        f"(a corrected image or configuration), or return to {upgrade.from_version} "
        f"(spec.image: {upgrade.from_image})"
    )
    to_release = parse_release(upgrade.to_version)
    newest = parse_release(record.newest_ready) if record else None
    if to_release is not None and (newest is None or newest < to_release):
        text += f", which is no downgrade: {upgrade.to_version} never became Ready"
    return text
