"""The Aidbox controller: the store the informers fill, the runtime's workers, and one
ClusterReconciler pass per queued cluster. It decides only what an Aidbox pass means for the
workers (when to look again) and what a deleted cluster leaves to forget."""

from __future__ import annotations

import logging

from aidbox_operator.metrics import CLUSTER_SERIES, PHASES
from aidbox_operator.model.constants import FIELD_MANAGER
from aidbox_operator.reconcile.aidbox_health import AidboxHealth
from aidbox_operator.reconcile.channel import ChannelReconciler
from aidbox_operator.reconcile.cluster import ClusterReconciler, utc_now
from aidbox_operator.reconcile.fights import WriterFights
from aidbox_operator.reconcile.images import TagResolver
from aidbox_operator.reconcile.kinds import CHANNEL_NAMESPACE
from aidbox_operator.reconcile.pacing import DEFAULT_OPERATOR_ROLLOUTS, RolloutPacing
from aidbox_operator.reconcile.result import PassResult
from aidbox_operator.reconcile.store import Key, ObjectStore
from aidbox_operator.runtime.client import KubeClient
from aidbox_operator.runtime.events import EventRecorder
from aidbox_operator.runtime.pacer import Pacer
from aidbox_operator.runtime.workers import DEFAULT_WORKERS, Outcome, Workers
from aidbox_operator.runtime.workqueue import WorkQueue

log = logging.getLogger(__name__)
# Nothing announces that a missing optional kind got installed: look again this often.
PROBLEM_RETRY_SECONDS = 10.0


def _describe(key: Key) -> dict[str, str]:
    return {"namespace": key[0], "cluster": key[1]}


def outcome_of(result: PassResult) -> Outcome:
    """When the workers look at the cluster again without a watch event."""
    label = "blocked" if result.blocked else "success"
    if result.refused:
        return Outcome(backoff=True, label=label)
    if result.retry_after is not None:
        return Outcome(requeue_after=result.retry_after, label=label)
    if result.problems:
        return Outcome(requeue_after=PROBLEM_RETRY_SECONDS, label=label)
    return Outcome(label=label)


class Controller:
    def __init__(
        self,
        client: KubeClient,
        workers: int = DEFAULT_WORKERS,
        aidbox_health: bool = False,
        resolver: TagResolver | None = None,
        operator_rollouts: int = DEFAULT_OPERATOR_ROLLOUTS,
        release_channels: bool = True,
        operator_namespace: str | None = None,
    ) -> None:
        self.client = client
        self.store = ObjectStore()
        self.workers: Workers[Key] = Workers(self._reconcile, workers, describe=_describe)
        self.recorder = EventRecorder(client, FIELD_MANAGER, log_key="cluster")
        self.fights = WriterFights()
        # An answer from a pod's /health queues its cluster for another pass.
        self.health = AidboxHealth(enabled=aidbox_health, on_learned=self.queue.add)
        # A freed rollout slot queues the next waiting cluster for a pass.
        self.pacer: Pacer[Key] = Pacer(operator_rollouts, on_free=self.queue.add)
        self.reconciler = ClusterReconciler(
            client,
            self.store,
            self.recorder,
            fights=self.fights,
            health=self.health,
            resolver=resolver,
            pacing=RolloutPacing(self.pacer, self.store),
            release_channels=release_channels,
            operator_namespace=operator_namespace,
        )
        self.channels = ChannelReconciler(client, self.store, self.recorder, utc_now)

    @property
    def queue(self) -> WorkQueue[Key]:
        return self.workers.queue

    def forget(self, key: Key) -> None:
        """A cluster was deleted: nothing about it outlives it."""
        PHASES.forget(key)
        CLUSTER_SERIES.forget(key)
        self.workers.forget(key)
        self.fights.forget(*key)
        self.health.forget(key)
        self.pacer.forget(key)

    async def _reconcile(self, key: Key) -> Outcome:
        if key[0] == CHANNEL_NAMESPACE:
            return outcome_of(await self.channels.reconcile(key[1]))
        result = await self.reconciler.reconcile(key)
        if result.phase:
            PHASES.set(key, result.phase)
        if result.facts is not None:
            CLUSTER_SERIES.set(key, result.facts)
        if result.changes or result.status_written:
            log.debug(
                "reconciled: %s",
                ", ".join(f"{r} {m}" for r, m in result.changes) or "status",
                extra=_describe(key),
            )
        return outcome_of(result)

    def start(self) -> None:
        self.workers.start()

    async def stop(self) -> None:
        await self.workers.stop()
        await self.recorder.drain()
        await self.health.close()

    def pause(self) -> None:
        """Stop reconciling (standby). What this replica last computed of each cluster goes
        too: only the leader's series tell the truth, and a standby still exporting a cluster
        Ready (or Stalled) long after it lost the Lease would fire alerts, or hide them."""
        self.workers.pause()
        PHASES.clear()
        CLUSTER_SERIES.clear()

    def resume(self) -> None:
        """Start reconciling, beginning with every cluster seen while on standby."""
        channels = [(CHANNEL_NAMESPACE, name) for name in self.store.channel_names()]
        self.workers.resume([*self.store.cluster_keys(), *channels])
