"""Write the status a pass computed, and the Events its transitions deserve."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aidbox_operator.metrics import ClusterFacts
from aidbox_operator.model import AidboxCluster, ClusterStatus
from aidbox_operator.model.status import READY, STALLED, PinnedImage
from aidbox_operator.reconcile.kinds import AIDBOX_CLUSTERS
from aidbox_operator.reconcile.result import PassResult
from aidbox_operator.reconcile.store import ObjectStore
from aidbox_operator.runtime.client import ApiError, KubeClient
from aidbox_operator.runtime.events import EventRecorder
from aidbox_operator.runtime.patch import merge_patch
from aidbox_operator.status import Observation, compute_status, transition_events
from aidbox_operator.status.upgrade import pods_by_release


def _observed_by_controller(deployment: dict[str, Any]) -> bool:
    observed = (deployment.get("status") or {}).get("observedGeneration", 0)
    return bool(observed >= deployment["metadata"].get("generation", 0))


def _pods_lag(obs: Observation) -> bool:
    """Pod events lag the Deployment's count (after a restart, until the pod listing arrives):
    judging pods now could report problems that are not there."""
    live = sum(1 for p in obs.pods if not p.terminating)
    return obs.deployment is not None and live < int(
        (obs.deployment.get("status") or {}).get("replicas", 0)
    )


class StatusReporter:
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

    async def record_pin(self, cluster: AidboxCluster, pin: PinnedImage) -> None:
        """Keep a new pin in status before any pod can run it: a pass that failed after
        applying the Deployment would otherwise look the tag up again and might pin whatever
        it names by then."""
        updated = await self.client.patch_status(
            AIDBOX_CLUSTERS,
            cluster.namespace,
            cluster.name,
            {"pinnedImage": pin.model_dump(by_alias=True, mode="json")},
        )
        self.store.put_cluster(updated)

    async def report(
        self, body: dict[str, Any], obs: Observation, previous: ClusterStatus, result: PassResult
    ) -> None:
        deployment = obs.deployment
        if obs.blocker is None and deployment and not _observed_by_controller(deployment):
            # The Deployment controller has not seen the latest change yet (an annotation edit
            # bumps a Deployment's generation too); its next status update brings us back.
            return
        if _pods_lag(obs):
            return  # the missing pods' events bring us back
        now = self.clock()
        status = compute_status(obs, previous, now)
        result.phase = status.phase
        result.facts = cluster_facts(status, obs)
        wanted, before = status.to_api(), previous.to_api()
        if wanted == before:
            return
        meta = body["metadata"]
        try:
            # Every key this status no longer has is removed (a release that stopped running,
            # a finished upgrade): a plain merge patch would leave it in place.
            updated = await self.client.patch_status(
                AIDBOX_CLUSTERS, meta["namespace"], meta["name"], merge_patch(before, wanted)
            )
        except ApiError as err:
            if err.not_found:
                return  # deleted meanwhile
            raise
        result.status_written = True
        self.store.put_cluster(updated)
        for type_, reason, message in transition_events(previous, status):
            await self.recorder.record(body, type_, reason, message, now)


def cluster_facts(status: ClusterStatus, obs: Observation) -> ClusterFacts:
    ready, stalled = status.condition(READY), status.condition(STALLED)
    return ClusterFacts(
        phase=status.phase,
        version=status.version,
        ready=bool(ready and ready.status == "True"),
        desired=obs.desired_replicas,
        ready_replicas=status.ready_replicas,
        pods_by_version=pods_by_release(obs),
        upgrading=status.upgrade is not None,
        stalled=stalled.reason if stalled and stalled.status == "True" else "",
    )
