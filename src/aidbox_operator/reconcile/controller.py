"""The controller: turns watch events into store updates and queued reconciles, and runs
the workers that reconcile. Handlers call only `observe_*`, `start`, `stop`, `pause` and
`resume`; a failed pass is retried with backoff, and a cluster that something outside the
operator must unblock is looked at again on a timer."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from aidbox_operator.metrics import PHASES, QUEUE_DEPTH, RECONCILE_SECONDS, RECONCILES
from aidbox_operator.reconcile.aidbox_health import AidboxHealth
from aidbox_operator.reconcile.cluster import ClusterReconciler
from aidbox_operator.reconcile.events import EventRecorder
from aidbox_operator.reconcile.fights import WriterFights
from aidbox_operator.reconcile.kube import ApiError, KubeClient, NotLeaderError
from aidbox_operator.reconcile.result import PassResult
from aidbox_operator.reconcile.store import Key, ObjectStore, owner_key
from aidbox_operator.reconcile.workqueue import WorkQueue

log = logging.getLogger(__name__)
DELETED = "DELETED"
MAX_BACKOFF = 60.0
# Concurrent reconciles: coroutines, so many cost little; measured in bench/ (32 kept the
# fleet burst limited by the API server, not by the operator).
DEFAULT_WORKERS = 32
PROBLEM_RETRY_SECONDS = 10.0


class Controller:
    def __init__(
        self, client: KubeClient, workers: int = DEFAULT_WORKERS, aidbox_health: bool = False
    ) -> None:
        self.client = client
        self.store = ObjectStore()
        self.queue: WorkQueue[Key] = WorkQueue()
        self.recorder = EventRecorder(client)
        self.fights = WriterFights()
        # An answer from a pod's /health queues its cluster for another pass.
        self.health = AidboxHealth(enabled=aidbox_health, on_learned=self.queue.add)
        self.reconciler = ClusterReconciler(
            client, self.store, self.recorder, fights=self.fights, health=self.health
        )
        self._workers = workers
        self._tasks: list[asyncio.Task[None]] = []
        self._failures: dict[Key, int] = {}
        # Workers take work only while this replica leads (always, without leader election).
        self.leading = asyncio.Event()
        self.leading.set()
        # ... and only once the informers' caches are complete (reconcile/feeds.py clears it
        # until then); without informers there is nothing to wait for.
        self.caches_synced = asyncio.Event()
        self.caches_synced.set()
        QUEUE_DEPTH.set_function(lambda: self.queue.depth)

    # -- watch events ------------------------------------------------------------------------
    def observe_cluster(self, event_type: str | None, body: dict[str, Any]) -> None:
        meta = body["metadata"]
        key = (meta["namespace"], meta["name"])
        if event_type == DELETED:
            self.store.drop_cluster(key)
            PHASES.forget(key)
            self.queue.forget(key)
            self._failures.pop(key, None)
            self.fights.forget(*key)
            self.health.forget(key)
            return
        self.store.put_cluster(body)
        self.queue.add(key)

    def observe_child(self, event_type: str | None, body: dict[str, Any]) -> None:
        owner = owner_key(body)
        if owner is None:
            return
        meta = body["metadata"]
        if event_type == DELETED:
            self.store.drop_child(body["kind"], meta["namespace"], meta["name"])
        else:
            self.store.put_child(body)
        if self.store.has_cluster(owner):
            self.queue.add(owner)

    def observe_pod(self, event_type: str | None, body: dict[str, Any]) -> None:
        owner = owner_key(body)
        if owner is None:
            return
        if event_type == DELETED:
            self.store.drop_pod(owner, body["metadata"]["name"])
        else:
            self.store.put_pod(owner, body)
        if self.store.has_cluster(owner):
            self.queue.add(owner)

    # -- workers ---------------------------------------------------------------------------
    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._work(), name=f"reconcile-{i}") for i in range(self._workers)
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        await self.recorder.drain()
        await self.health.close()

    def pause(self) -> None:
        self.leading.clear()

    def resume(self) -> None:
        """Start reconciling, beginning with every cluster seen while on standby."""
        self.leading.set()
        for key in self.store.cluster_keys():
            self.queue.add(key)

    async def _work(self) -> None:
        while True:
            await self.caches_synced.wait()
            await self.leading.wait()
            key = await self.queue.get()
            if not self.leading.is_set():
                self.queue.done(key)  # paused meanwhile; resume() queues every cluster again
                continue
            try:
                await self.reconcile(key)
            finally:
                self.queue.done(key)

    async def reconcile(self, key: Key) -> None:
        namespace, name = key
        extra = {"namespace": namespace, "cluster": name}
        started = time.monotonic()
        try:
            result = await self.reconciler.reconcile(key)
        except NotLeaderError:
            # Leadership ended during the pass; the next leader (maybe this replica again,
            # which then resyncs everything) finishes it.
            log.info("pass stopped: no longer the leader", extra=extra)
            return
        except (TimeoutError, ApiError, OSError) as err:
            RECONCILES.labels(result="error").inc()
            if isinstance(err, ApiError) and "being terminated" in err.message:
                # The namespace is going away with everything in it; nothing to repair.
                log.debug("namespace is being deleted", extra=extra)
                return
            self._retry(key, err, extra)
            return
        except Exception as err:  # a bug must not stop the other clusters
            RECONCILES.labels(result="error").inc()
            log.exception("reconcile failed", extra=extra)
            self._retry(key, err, extra)
            return
        finally:
            RECONCILE_SECONDS.observe(time.monotonic() - started)
        RECONCILES.labels(result="blocked" if result.blocked else "success").inc()
        if result.phase:
            PHASES.set(key, result.phase)
        self._follow_up(key, result)
        if result.changes or result.status_written:
            log.debug(
                "reconciled: %s",
                ", ".join(f"{r} {m}" for r, m in result.changes) or "status",
                extra=extra,
            )

    def _follow_up(self, key: Key, result: PassResult) -> None:
        """When to look at the cluster again without a watch event."""
        if result.refused:
            # The API server refused a child: the same request would be refused again, so
            # back off; a spec change is a watch event and is tried at once.
            self.queue.add_after(key, self._backoff(key))
            return
        self._failures.pop(key, None)
        if result.retry_after is not None:
            self.queue.add_after(key, result.retry_after)
        elif result.problems:
            # Nothing announces that a missing optional kind got installed: look again later.
            self.queue.add_after(key, PROBLEM_RETRY_SECONDS)

    def _backoff(self, key: Key) -> float:
        failures = self._failures.get(key, 0) + 1
        self._failures[key] = failures
        return float(min(MAX_BACKOFF, 0.5 * 2 ** (failures - 1)))

    def _retry(self, key: Key, err: BaseException, extra: dict[str, str]) -> None:
        delay = self._backoff(key)
        log.warning("reconcile failed (%s); retrying in %.1fs", err, delay, extra=extra)
        self.queue.add_after(key, delay)
