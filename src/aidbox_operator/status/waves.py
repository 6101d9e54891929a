"""How a release channel moves its clusters (pure): waves in order, a few clusters at a time,
a soak after each wave, a halt at the first failed upgrade, and the guard against going back.

The plan is recomputed from scratch on every channel pass from what the clusters report, so an
operator restart loses nothing but the soak start times, which live in the channel's status.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from aidbox_operator.model.channel import (
    FailedCluster,
    ReleaseChannelSpec,
    ReleaseChannelStatus,
    WaveSpec,
    WaveStatus,
)
from aidbox_operator.model.constants import ALLOW_DOWNGRADE_ANNOTATION
from aidbox_operator.model.status import Condition, merge_conditions, new_conditions
from aidbox_operator.model.version import parse_image_version, parse_release
from aidbox_operator.model.windows import seconds_until_open
from aidbox_operator.status.events import EventSpec

# Cluster conditions that mean its upgrade cannot go on without a person.
FAILED_REASONS = frozenset({"UpgradeFailed", "DowngradeRefused", "ApplyFailed"})


@dataclass(frozen=True)
class Member:
    """What a channel needs to know of one of its clusters."""

    key: str  # namespace/name
    labels: dict[str, str]
    image: str  # the image its Deployment's pods are made from ("" before it has one)
    ready: bool  # Ready=True for its current spec
    stalled: tuple[str, str] | None = None  # (reason, message) of Stalled=True
    upgrade_started: str = ""  # status.upgrade.started


@dataclass
class ChannelPlan:
    status: ReleaseChannelStatus
    # Seconds until a soak ends (the channel must look again then), None when nothing waits.
    look_again: float | None = None
    waves: list[WaveStatus] = field(default_factory=list)


def _moment(stamp: str) -> datetime:
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def _seconds(stamp: str) -> float:
    return _moment(stamp).timestamp()


def wave_of(member: Member, waves: list[WaveSpec]) -> int | None:
    for index, wave in enumerate(waves):
        if all(member.labels.get(k) == v for k, v in wave.match_labels.items()):
            return index
    return None


def _failure(member: Member, deadline: int, now: str) -> FailedCluster | None:
    namespace, name = member.key.split("/", 1)
    if member.stalled and member.stalled[0] in FAILED_REASONS:
        return FailedCluster(
            namespace=namespace, name=name, reason=member.stalled[0], message=member.stalled[1]
        )
    started = member.upgrade_started
    if not member.ready and started and _seconds(now) - _seconds(started) > deadline:
        return FailedCluster(
            namespace=namespace,
            name=name,
            reason="NotReadyInTime",
            message=f"not Ready {deadline}s after its upgrade started at {started}",
        )
    return None


def refused_downgrade(
    spec: ReleaseChannelSpec, previous: ReleaseChannelStatus, annotations: dict[str, str]
) -> str:
    """Why the channel's image is refused ("" when it is not): older than a release its
    clusters already ran Ready, and not named by the override annotation."""
    wanted_text = parse_image_version(spec.image).display
    wanted, newest = parse_release(wanted_text), parse_release(previous.newest_ready)
    if wanted is None or newest is None or wanted >= newest:
        return ""
    if annotations.get(ALLOW_DOWNGRADE_ANNOTATION, "").strip() == wanted_text:
        return ""
    return (
        f"spec.image {spec.image} runs Aidbox {wanted_text}, older than "
        f"{previous.newest_ready}, which clusters of this channel already ran; no cluster is "
        "moved. To go back anyway, set the annotation "
        f'{ALLOW_DOWNGRADE_ANNOTATION}: "{wanted_text}"'
    )


@dataclass
class _Walk:
    """State carried from one wave to the next while planning."""

    admitted: list[str] = field(default_factory=list)
    phase: str = "Complete"
    current: str = ""
    blocked: bool = False
    look_again: float | None = None


def _wave(
    wave: WaveSpec,
    members: list[Member],
    spec: ReleaseChannelSpec,
    before: WaveStatus | None,
    now: str,
    walk: _Walk,
) -> WaveStatus:
    target = spec.image
    on = [m for m in members if m.image == target]
    ready = [m for m in on if m.ready]
    failed = [f for m in on if (f := _failure(m, spec.ready_deadline_seconds, now))]
    done = len(ready) == len(members)
    # The soak runs from when this pass saw the wave finish moving; a wave found done at first
    # sight of a target (its clusters were made on it) moved nothing and needs no soak.
    completed = before.completed_at if before else ""
    if done and not completed and before is not None and members:
        completed = now
    status = WaveStatus(
        name=wave.name,
        clusters=len(members),
        updated=len(on),
        ready=len(ready),
        failed=failed,
        completed_at=completed if done else "",
    )
    if walk.blocked:
        return status
    if failed:
        walk.phase, walk.current, walk.blocked = "Halted", wave.name, True
        walk.admitted += [m.key for m in on]
        return status
    if not done:
        walk.phase, walk.current, walk.blocked = "Progressing", wave.name, True
        room = wave.max_concurrent - (len(on) - len(ready))
        closed = seconds_until_open(wave.maintenance_windows, _moment(now))
        if closed > 0:
            room = 0  # clusters already moving go on; no new one starts outside the window
            walk.look_again = closed
        waiting = [m.key for m in members if m.image != target]
        walk.admitted += [m.key for m in on] + waiting[: max(room, 0)]
        return status
    walk.admitted += [m.key for m in members]
    left = _seconds(completed) + wave.soak_seconds - _seconds(now) if completed else 0
    if left > 0:
        walk.phase, walk.current, walk.blocked = "Soaking", wave.name, True
        walk.look_again = left
    return status


def plan_channel(
    spec: ReleaseChannelSpec,
    previous: ReleaseChannelStatus,
    members: list[Member],
    now: str,
    annotations: dict[str, str],
) -> ChannelPlan:
    """The channel's next status: which clusters may run spec.image now, per-wave counts."""
    fresh = previous.image != spec.image  # a new target: soak times start over
    before = {} if fresh else {w.name: w for w in previous.waves}
    groups: list[list[Member]] = [[] for _ in spec.waves]
    for member in sorted(members, key=lambda m: m.key):
        index = wave_of(member, spec.waves)
        if index is not None:
            groups[index].append(member)
    walk = _Walk()
    refusal = refused_downgrade(spec, previous, annotations)
    if refusal:
        walk.phase, walk.blocked = "Refused", True
    waves = [
        _wave(wave, group, spec, before.get(wave.name), now, walk)
        for wave, group in zip(spec.waves, groups, strict=True)
    ]
    status = previous.model_copy(
        update={
            "phase": walk.phase,
            "image": spec.image,
            "current_wave": walk.current,
            "admitted": sorted(set(walk.admitted)),
            "waves": waves,
            "progress": f"{sum(1 for w in waves if w.ready == w.clusters)}/{len(waves)}",
            "stable_image": spec.image if walk.phase == "Complete" else previous.stable_image,
            "newest_ready": _newest(previous.newest_ready, spec.image, members),
        }
    )
    return ChannelPlan(status, walk.look_again, waves)


def _newest(recorded: str, target: str, members: list[Member]) -> str:
    """The newest release a cluster of the channel ran Ready, as the channel knows it."""
    text = parse_image_version(target).display
    if any(m.image == target and m.ready for m in members):
        release, known = parse_release(text), parse_release(recorded)
        if release is not None and (known is None or release > known):
            return text
    return recorded


def channel_conditions(
    status: ReleaseChannelStatus, refusal: str, generation: int | None, now: str
) -> list[Condition]:
    """Ready/Progressing/Degraded and the kstatus pair for a channel's phase."""
    failed = [f for w in status.waves for f in w.failed]
    detail = "; ".join(f"{f.namespace}/{f.name}: {f.reason}: {f.message}" for f in failed[:3])
    texts = {
        "Complete": f"every cluster of the channel runs {status.image}",
        "Progressing": f"wave {status.current_wave} is moving to {status.image}",
        "Soaking": f"wave {status.current_wave} runs {status.image}; the next waits for its soak",
        "Halted": f"halted in wave {status.current_wave}: {detail}; later waves are not touched",
        "Refused": refusal,
    }
    phase, text = status.phase, texts[status.phase]
    moving = phase in ("Progressing", "Soaking")
    stuck = phase in ("Halted", "Refused")
    reason = {"Halted": "WaveFailed", "Refused": "DowngradeRefused"}.get(phase, phase)
    states = {
        "Ready": (phase == "Complete", reason, text),
        "Progressing": (moving, reason, text),
        "Degraded": (stuck, reason if stuck else "AsExpected", text if stuck else ""),
        "Reconciling": (moving, reason if moving else "AsExpected", text if moving else ""),
        "Stalled": (stuck, reason if stuck else "AsExpected", text if stuck else ""),
    }
    computed = new_conditions(states.items(), generation)
    return merge_conditions(status.conditions, computed, now)


def channel_events(before: ReleaseChannelStatus, after: ReleaseChannelStatus) -> list[EventSpec]:
    """A halt and a refusal once each, a wave starting, the channel done."""
    events: list[EventSpec] = []
    stalled = after.condition("Stalled")
    if after.phase != before.phase and after.phase in ("Halted", "Refused") and stalled:
        events.append(("Warning", stalled.reason, stalled.message))
    if after.phase == "Progressing" and after.current_wave != before.current_wave:
        events.append(("Normal", "WaveStarted", f"wave {after.current_wave} -> {after.image}"))
    if after.phase == "Complete" and before.phase != "Complete":
        events.append(("Normal", "ChannelComplete", f"every cluster runs {after.image}"))
    return events
