"""One pass over an AidboxReleaseChannel: read what its clusters report, plan the waves, write
the channel's status (which clusters may move now) and the Events its transitions deserve.

The channel never touches a cluster: each cluster's own pass reads the channel's status and
moves to the channel's image only once admitted (reconcile/cluster.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from aidbox_operator.model import ClusterStatus
from aidbox_operator.model.channel import ReleaseChannelSpec, ReleaseChannelStatus
from aidbox_operator.reconcile.kinds import RELEASE_CHANNELS
from aidbox_operator.reconcile.result import PassResult
from aidbox_operator.reconcile.store import Key, ObjectStore
from aidbox_operator.runtime.client import ApiError, KubeClient
from aidbox_operator.runtime.events import EventRecorder
from aidbox_operator.runtime.patch import merge_patch
from aidbox_operator.status.waves import (
    Member,
    channel_conditions,
    channel_events,
    plan_channel,
    refused_downgrade,
)


def member(key: Key, body: dict[str, Any]) -> Member:
    """A cluster as its channel sees it: from its own status, as the operator wrote it."""
    status = ClusterStatus.model_validate(body.get("status") or {})
    generation = body["metadata"].get("generation")
    current = status.observed_generation == generation
    ready = status.condition("Ready")
    stalled = status.condition("Stalled")
    return Member(
        key=f"{key[0]}/{key[1]}",
        labels=dict(body["metadata"].get("labels") or {}),
        image=status.image,
        ready=bool(current and ready and ready.status == "True"),
        stalled=(stalled.reason, stalled.message) if stalled and stalled.status == "True" else None,
        upgrade_started=status.upgrade.started if status.upgrade else "",
    )


class ChannelReconciler:
    def __init__(
        self,
        client: KubeClient,
        store: ObjectStore,
        recorder: EventRecorder,
        clock: Callable[[], str],
    ) -> None:
        self.client = client
        self.store = store
        self.recorder = recorder
        self.clock = clock

    async def reconcile(self, name: str) -> PassResult:
        result = PassResult()
        body = self.store.channel(name)
        if body is None or body["metadata"].get("deletionTimestamp"):
            return result
        try:
            spec = ReleaseChannelSpec.model_validate(body.get("spec") or {})
        except ValidationError:
            return result  # admission refuses what the model refuses; nothing to plan from
        previous = ReleaseChannelStatus.model_validate(body.get("status") or {})
        members = []
        for key in self.store.channel_members(name):
            cluster = self.store.cluster(key)
            if cluster is not None:
                members.append(member(key, cluster))
        now = self.clock()
        annotations = dict(body["metadata"].get("annotations") or {})
        plan = plan_channel(spec, previous, members, now, annotations)
        refusal = refused_downgrade(spec, previous, annotations)
        generation = body["metadata"].get("generation")
        status = plan.status.model_copy(
            update={
                "conditions": channel_conditions(plan.status, refusal, generation, now),
                "observed_generation": previous.observed_generation if refusal else generation,
            }
        )
        if plan.look_again is not None:
            result.look_again(plan.look_again)
        await self._write(body, previous, status, result)
        return result

    async def _write(
        self,
        body: dict[str, Any],
        previous: ReleaseChannelStatus,
        status: ReleaseChannelStatus,
        result: PassResult,
    ) -> None:
        wanted, before = status.to_api(), previous.to_api()
        if wanted == before:
            return
        name = body["metadata"]["name"]
        try:
            updated = await self.client.patch_status(
                RELEASE_CHANNELS, "", name, merge_patch(before, wanted)
            )
        except ApiError as err:
            if err.not_found:
                return
            raise
        result.status_written = True
        result.phase = status.phase
        self.store.put_channel(updated)
        for type_, reason, message in channel_events(previous, status):
            await self.recorder.record(body, type_, reason, message, self.clock())
