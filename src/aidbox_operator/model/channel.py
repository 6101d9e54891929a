"""AidboxReleaseChannel: one Aidbox release for many AidboxClusters, reaching them in waves.

A cluster opts in with `spec.channel` instead of `spec.image`. Moving the channel's image moves
its clusters wave by wave (chosen by label selector, a few at a time, a soak after each wave);
the first cluster that fails its upgrade halts the channel, and later waves are not touched.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from aidbox_operator.model.base import KubeModel
from aidbox_operator.model.status import Condition, StatusModel
from aidbox_operator.model.version import parse_image_version
from aidbox_operator.model.windows import MaintenanceWindow

CHANNEL_KIND = "AidboxReleaseChannel"
CHANNEL_PLURAL = "aidboxreleasechannels"
CHANNEL_SINGULAR = "aidboxreleasechannel"
CHANNEL_SHORT_NAME = "abxch"
# A fixed reference: a digest, or a full YYMM.MINOR tag (Aidbox never moves those).
FIXED_IMAGE = (
    r"^[^\s@]+(:[0-9]{4}\.[0-9]+|@sha(256|512):[a-f0-9]+|:[0-9]{4}\.[0-9]+@sha(256|512):[a-f0-9]+)$"
)
ChannelPhase = Literal["Progressing", "Soaking", "Complete", "Halted", "Refused"]


class WaveSpec(KubeModel):
    """One step of a channel's rollout."""

    name: str = Field(
        min_length=1, max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", description="Name."
    )
    match_labels: dict[str, str] = Field(
        default_factory=dict,
        description="Clusters whose labels include all of these (empty: every cluster on the "
        "channel not taken by an earlier wave).",
    )
    max_concurrent: int = Field(
        default=1, ge=1, le=1000, description="Clusters of this wave upgrading at once."
    )
    soak_seconds: int = Field(
        default=0, ge=0, description="Seconds after the whole wave is Ready before the next starts."
    )
    maintenance_windows: list[MaintenanceWindow] = Field(
        default_factory=list,
        max_length=16,
        description="When this wave's clusters may start moving; empty: any time.",
    )


class ReleaseChannelSpec(KubeModel):
    """Which release the channel's clusters run, and how a change of it reaches them."""

    image: str = Field(
        min_length=1,
        max_length=512,
        pattern=FIXED_IMAGE,
        description="Aidbox image with a full YYMM.MINOR tag or a digest: a channel moves only "
        "when this field changes.",
    )
    waves: list[WaveSpec] = Field(
        min_length=1,
        max_length=20,
        description="Waves in order; a cluster belongs to the first that matches it.",
    )
    ready_deadline_seconds: int = Field(
        default=1800,
        ge=60,
        description="A cluster not Ready this long after its upgrade started halts the channel.",
    )

    @field_validator("image")
    @classmethod
    def _fixed(cls, image: str) -> str:
        if not parse_image_version(image).fixed:
            raise ValueError(f"{image} is a moving tag: name a full YYMM.MINOR tag or a digest")
        return image


class FailedCluster(StatusModel):
    namespace: str
    name: str
    reason: str
    message: str = ""


class WaveStatus(StatusModel):
    name: str
    clusters: int = Field(default=0, description="Clusters in the wave.")
    updated: int = Field(default=0, description="Clusters whose pods run the channel's image.")
    ready: int = Field(default=0, description="Of those, Ready.")
    failed: list[FailedCluster] = Field(default_factory=list, description="Failed upgrades.")
    completed_at: str = Field(default="", description="When every cluster was Ready on it.")


class ReleaseChannelStatus(StatusModel):
    observed_generation: int | None = Field(default=None, description="Generation acted on.")
    phase: ChannelPhase = Field(
        default="Progressing",
        description="Progressing, Soaking (a wave is Ready, the next waits), Complete, Halted "
        "(a cluster failed its upgrade: no further cluster is moved), Refused (an older image "
        "than the channel has already run).",
    )
    newest_ready: str = Field(
        default="", description="Newest release a cluster of this channel ran Ready on it."
    )
    image: str = Field(default="", description="Image the channel is moving its clusters to.")
    stable_image: str = Field(
        default="", description="Last image every cluster of the channel ran Ready."
    )
    current_wave: str = Field(default="", description="Wave being upgraded now.")
    progress: str = Field(default="", description="Waves done / waves, for kubectl get.")
    admitted: list[str] = Field(
        default_factory=list,
        description="namespace/name of clusters allowed to move to the image now.",
    )
    waves: list[WaveStatus] = Field(default_factory=list, description="Per wave.")
    conditions: list[Condition] = Field(default_factory=list, description="Current conditions.")

    def condition(self, type_: str) -> Condition | None:
        return next((c for c in self.conditions if c.type == type_), None)

    def to_api(self) -> dict[str, object]:
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")
