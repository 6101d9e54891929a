"""What a cluster on a release channel runs: the channel's image once the channel admits it
(or once it already runs it), else the image it runs now; a new cluster starts on the channel's
last complete image."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from pydantic import ValidationError

from aidbox_operator.model import AidboxCluster, ClusterStatus
from aidbox_operator.model.channel import ReleaseChannelSpec, ReleaseChannelStatus
from aidbox_operator.model.windows import opening_moment, seconds_until_open
from aidbox_operator.reconcile.store import ObjectStore
from aidbox_operator.status import Blocker
from aidbox_operator.status.upgrade import template_image


@dataclass(frozen=True)
class ChannelView:
    cluster: AidboxCluster  # with spec.image set to what it should run now
    queued: tuple[str, str] | None = None  # why it does not move yet
    blocker: Blocker | None = None
    retry: float | None = None  # seconds until its maintenance window opens


def _missing(name: str, why: str) -> Blocker:
    return Blocker(
        "ChannelNotFound",
        f"spec.channel names AidboxReleaseChannel {name}, which {why}; nothing running is "
        "changed until it does",
        "held",
    )


def channel_view(
    cluster: AidboxCluster,
    previous: ClusterStatus,
    store: ObjectStore,
    handled: bool = True,
    now: str = "",
) -> ChannelView:
    name = cluster.spec.channel
    assert name is not None
    if not handled:
        return ChannelView(
            cluster,
            blocker=Blocker(
                "ChannelsNotHandled",
                f"spec.channel names {name}, but this operator does not handle release "
                "channels (it watches chosen namespaces; start it with --release-channels=on, "
                "one operator per channel); nothing running is changed",
                "held",
            ),
        )
    body = store.channel(name)
    if body is None:
        return ChannelView(cluster, blocker=_missing(name, "does not exist"))
    try:
        spec = ReleaseChannelSpec.model_validate(body.get("spec") or {})
    except ValidationError:
        return ChannelView(cluster, blocker=_missing(name, "has an invalid spec"))
    status = ReleaseChannelStatus.model_validate(body.get("status") or {})
    # What the Deployment's pods are made from now; status may not have caught up with it.
    deployment = store.child("Deployment", cluster.namespace, cluster.name)
    running = template_image(deployment) if deployment is not None else previous.image
    key = f"{cluster.namespace}/{cluster.name}"
    admitted = status.image == spec.image and key in status.admitted
    queued, retry = None, None
    closed = seconds_until_open(cluster.spec.maintenance_windows, _moment(now))
    if not running:
        image = status.stable_image or spec.image
    elif running == spec.image or (admitted and not closed):
        image = spec.image
    elif admitted:
        image, retry = running, closed
        queued = (
            "WaveQueued",
            f"release channel {name} lets this cluster move to {spec.image}; it waits for its "
            f"maintenance window (opens {opening_moment(_moment(now), closed)}) and keeps "
            f"running {running}",
        )
    else:
        image = running
        queued = _waiting(name, spec.image, status.phase, running)
    spec_now = cluster.spec.model_copy(update={"image": image})
    return ChannelView(cluster.model_copy(update={"spec": spec_now}), queued, retry=retry)


def _moment(stamp: str) -> datetime:
    if not stamp:
        return datetime.now(UTC)
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def _waiting(channel: str, image: str, phase: str | None, running: str) -> tuple[str, str]:
    """Why a cluster outside the channel's current admissions keeps its release. Stable while
    the channel steps from wave to wave: naming its phase or current wave here would cost
    every waiting cluster a status write at each step."""
    if phase in ("Halted", "Refused"):
        return (
            "ChannelHalted",
            f"release channel {channel} stopped its move to {image} ({phase}; its status "
            f"says why); this cluster keeps running {running}",
        )
    return (
        "WaveQueued",
        f"release channel {channel} moves its clusters to {image} wave by wave; this cluster "
        f"keeps running {running} until its wave",
    )
