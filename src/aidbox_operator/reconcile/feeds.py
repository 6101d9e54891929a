"""What the informers follow and where their events go: the store, and the work queue.

- AidboxClusters: in full, in the operator's namespaces.
- Deployments, Services, PodDisruptionBudgets, ServiceMonitors and Pods: only those labelled
  as the operator's (a server-side label selector), in full.
- ConfigMaps and Secrets: metadata only. Most are nothing to the operator (Helm release
  Secrets are ~100 KB each and a cluster has thousands); of the ones an AidboxCluster
  references, a changed resourceVersion is read with one GET and kept as a digest and key names.

Every watch of the process is one of these informers (one set of timeouts, one 410 path, one
namespace rule). The workers wait until each has listed once (`synced`): a reconcile then never
mistakes a child it has not received yet for a missing one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import aiohttp

from aidbox_operator.model.constants import INSTANCE_LABEL, MANAGED_BY, MANAGED_BY_LABEL
from aidbox_operator.reconcile.kinds import (
    AIDBOX_CLUSTERS,
    CHANNEL_NAMESPACE,
    CHILDREN,
    RELEASE_CHANNELS,
)
from aidbox_operator.reconcile.store import ChildKey, Key, ObjectStore, owner_key
from aidbox_operator.runtime.backoff import backoff_delay
from aidbox_operator.runtime.client import ApiError, KubeClient
from aidbox_operator.runtime.informer import Informer, Scope, Shared, scopes_for
from aidbox_operator.runtime.kinds import CONFIGMAPS, PODS, SECRETS, ResourceKind
from aidbox_operator.runtime.versions import resource_version
from aidbox_operator.runtime.workqueue import WorkQueue

log = logging.getLogger(__name__)
DELETED = "DELETED"
OWNED_SELECTOR = f"{MANAGED_BY_LABEL}={MANAGED_BY}"
# A referenced ConfigMap/Secret that cannot be read is tried again at most this often.
READ_RETRY_CAP = 30.0


class ClusterFeed:
    """AidboxClusters in; each change queues its cluster, a deletion forgets it everywhere."""

    def __init__(
        self, store: ObjectStore, queue: WorkQueue[Key], forget: Callable[[Key], None]
    ) -> None:
        self.store = store
        self.queue = queue
        self.forget = forget

    def event(self, event_type: str, body: dict[str, Any]) -> None:
        meta = body["metadata"]
        key = (meta["namespace"], meta["name"])
        # Its channel judges its waves from what the cluster reports: a change may move them.
        channel = self.store.channel_of(key)
        if event_type == DELETED:
            self.store.drop_cluster(key)
            self.forget(key)
        else:
            key = self.store.put_cluster(body)  # the store's names: queued and kept alike
            self.queue.add(key)
            channel = self.store.channel_of(key) or channel
        if channel:
            self.queue.add((CHANNEL_NAMESPACE, channel))

    def relisted(self, scope: Scope, present: set[Key], resource_version: str) -> None:
        for key in self.store.cluster_keys():
            if scope.accepts(key[0]) and key not in present:
                self.event(DELETED, {"metadata": {"namespace": key[0], "name": key[1]}})


class ChannelFeed:
    """AidboxReleaseChannels in; a change queues the channel, and the clusters it lets move
    (or stops letting move) since the last version."""

    def __init__(
        self, store: ObjectStore, queue: WorkQueue[Key], forget: Callable[[Key], None]
    ) -> None:
        self.store = store
        self.queue = queue
        self.forget = forget
        # Each channel as last delivered here: the store's copy may be newer already (a
        # channel's pass keeps the status it wrote), and the members must hear of it anyway.
        self.delivered: dict[str, dict[str, Any]] = {}

    def event(self, event_type: str, body: dict[str, Any]) -> None:
        name = body["metadata"]["name"]
        before = self.delivered.pop(name, None)
        if event_type == DELETED:
            self.store.drop_channel(name)
            self.forget((CHANNEL_NAMESPACE, name))
        else:
            self.delivered[name] = body
            self.store.put_channel(body)
            self.queue.add((CHANNEL_NAMESPACE, name))
        for key in self._affected(name, before, None if event_type == DELETED else body):
            self.queue.add(key)

    def _affected(
        self, name: str, before: dict[str, Any] | None, after: dict[str, Any] | None
    ) -> set[Key]:
        def admitted(body: dict[str, Any] | None) -> set[str]:
            return set(((body or {}).get("status") or {}).get("admitted") or [])

        def shown(body: dict[str, Any] | None) -> tuple[Any, ...]:
            # What every member's status repeats (WaveQueued/ChannelHalted name the target,
            # the phase and the wave): a change of any of them is news to all of them.
            status = (body or {}).get("status") or {}
            return status.get("image"), status.get("phase"), status.get("currentWave")

        members = self.store.channel_members(name)
        if before is None or after is None or shown(before) != shown(after):
            return set(members)
        moved = admitted(before) ^ admitted(after)
        return {k for k in members if f"{k[0]}/{k[1]}" in moved}

    def relisted(self, scope: Scope, present: set[Key], resource_version: str) -> None:
        for name in self.store.channel_names():
            if (CHANNEL_NAMESPACE, name) not in present:
                self.event(DELETED, {"metadata": {"name": name}})


class ChildFeed:
    """The operator's children of one kind in; each change queues the owning cluster."""

    def __init__(self, store: ObjectStore, queue: WorkQueue[Key], kind: ResourceKind) -> None:
        self.store = store
        self.queue = queue
        self.kind = kind.kind

    def event(self, event_type: str, body: dict[str, Any]) -> None:
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

    def relisted(self, scope: Scope, present: set[Key], resource_version: str) -> None:
        for kind, namespace, name in self.store.child_keys(self.kind):
            if scope.accepts(namespace) and (namespace, name) not in present:
                body = self.store.child(kind, namespace, name)
                if body is not None:
                    self.event(DELETED, body)


class PodFeed:
    """The clusters' pods in, as summaries; each change queues the owning cluster."""

    def __init__(self, store: ObjectStore, queue: WorkQueue[Key]) -> None:
        self.store = store
        self.queue = queue

    def event(self, event_type: str, body: dict[str, Any]) -> None:
        owner = owner_key(body)
        if owner is None:
            return
        if event_type == DELETED:
            self.store.drop_pod(owner, body["metadata"]["name"])
        else:
            self.store.put_pod(owner, body)
        if self.store.has_cluster(owner):
            self.queue.add(owner)

    def relisted(self, scope: Scope, present: set[Key], resource_version: str) -> None:
        for (namespace, cluster), pods in list(self.store.pods.items()):
            if not scope.accepts(namespace):
                continue
            for name in [n for n in pods if (namespace, n) not in present]:
                labels = {MANAGED_BY_LABEL: MANAGED_BY, INSTANCE_LABEL: cluster}
                gone = {"metadata": {"namespace": namespace, "name": name, "labels": labels}}
                self.event(DELETED, gone)


class ReferencedConfigs:
    """ConfigMap/Secret metadata in; summaries of the referenced ones in the store."""

    def __init__(self, client: KubeClient, store: ObjectStore, queue: WorkQueue[Key]) -> None:
        self.client = client
        self.store = store
        self.queue = queue
        self._reading: dict[ChildKey, asyncio.Task[None]] = {}
        self._again: set[ChildKey] = set()

    def feed(self, kind: ResourceKind) -> ConfigFeed:
        return ConfigFeed(self, kind)

    def observe(self, kind: ResourceKind, event_type: str, meta: dict[str, Any]) -> None:
        ref = (kind.kind, str(meta["metadata"]["namespace"]), str(meta["metadata"]["name"]))
        if kind.kind == "Secret":
            self.store.saw_secret(ref[1], ref[2], event_type != DELETED)
        if not self.store.is_referenced(*ref):
            self.store.configs.pop(ref, None)  # nobody points at it (any more)
            return
        version = resource_version(meta)
        if event_type == DELETED:
            self._record(ref, None, version)
            if ref in self._reading:
                self._again.add(ref)  # a read under way may answer with the old object
            return
        known = self.store.configs.get(ref)
        if known is None or version != known.resource_version:
            self._read(ref)

    def relisted(self, kind: ResourceKind, scope: Scope, present: set[Key], version: str) -> None:
        if kind.kind == "Secret":
            for namespace, name in list(self.store.keys_secrets):
                if scope.accepts(namespace) and (namespace, name) not in present:
                    self.store.saw_secret(namespace, name, False)
        for ref in list(self.store.references):
            ref_kind, namespace, name = ref
            vanished = (namespace, name) not in present
            if ref_kind == kind.kind and scope.accepts(namespace) and vanished:
                self._record(ref, None, version)

    def _record(self, ref: ChildKey, body: dict[str, Any] | None, deleted_at: str = "") -> None:
        if self.store.put_config(*ref, body, deleted_at=deleted_at):
            for cluster in sorted(self.store.references.get(ref, ())):
                self.queue.add(cluster)

    def _read(self, ref: ChildKey) -> None:
        if ref in self._reading:
            self._again.add(ref)  # read once more when the current read is back
            return
        self._reading[ref] = asyncio.create_task(self._read_loop(ref), name=f"read-{ref[0]}")

    async def _read_loop(self, ref: ChildKey) -> None:
        kind, namespace, name = ref
        failures = 0
        try:
            while self.store.is_referenced(*ref):
                self._again.discard(ref)
                try:
                    body = await self.client.get(
                        SECRETS if kind == "Secret" else CONFIGMAPS, namespace, name
                    )
                except (ApiError, aiohttp.ClientError, OSError, TimeoutError) as err:
                    failures += 1
                    log.warning("reading %s %s/%s: %s", kind, namespace, name, err)
                    await asyncio.sleep(backoff_delay(failures + 1, cap=READ_RETRY_CAP))
                    continue
                self._record(ref, body)
                if ref not in self._again:
                    return
        finally:
            self._reading.pop(ref, None)

    async def close(self) -> None:
        tasks = list(self._reading.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


class ConfigFeed:
    def __init__(self, configs: ReferencedConfigs, kind: ResourceKind) -> None:
        self.configs = configs
        self.kind = kind

    def event(self, event_type: str, body: dict[str, Any]) -> None:
        self.configs.observe(self.kind, event_type, body)

    def relisted(self, scope: Scope, present: set[Key], resource_version: str) -> None:
        self.configs.relisted(self.kind, scope, present, resource_version)


class Informers:
    """Every informer of one operator process; `start` before the workers."""

    def __init__(
        self,
        client: KubeClient,
        store: ObjectStore,
        queue: WorkQueue[Key],
        forget: Callable[[Key], None],
        namespaces: Sequence[str] = (),
        channels: bool = True,
    ) -> None:
        self.configs = ReferencedConfigs(client, store, queue)
        self.informers: list[Informer] = []
        shared = self.shared = Shared()
        if channels:
            # Cluster-scoped: one watch whatever namespaces the clusters live in.
            channel_feed = ChannelFeed(store, queue, forget)
            self.informers.append(
                Informer(client, RELEASE_CHANNELS, Scope(), channel_feed, shared=shared)
            )
        for scope in scopes_for(namespaces):
            clusters = ClusterFeed(store, queue, forget)
            self.informers.append(Informer(client, AIDBOX_CLUSTERS, scope, clusters, shared=shared))
            for kind in CHILDREN:
                feed = ChildFeed(store, queue, kind)
                self.informers.append(
                    Informer(
                        client, kind, scope, feed, label_selector=OWNED_SELECTOR, shared=shared
                    )
                )
            pods = PodFeed(store, queue)
            self.informers.append(
                Informer(client, PODS, scope, pods, label_selector=OWNED_SELECTOR, shared=shared)
            )
            for kind in (CONFIGMAPS, SECRETS):
                configs = self.configs.feed(kind)
                self.informers.append(
                    Informer(client, kind, scope, configs, metadata_only=True, shared=shared)
                )
        self._tasks: list[asyncio.Task[None]] = []

    def start(self, synced: asyncio.Event) -> None:
        """Run every informer; `synced` is set once each has listed once."""
        synced.clear()
        self._tasks = [
            asyncio.create_task(i.run(), name=f"informer-{i.name}") for i in self.informers
        ]
        self._tasks.append(asyncio.create_task(self._announce(synced), name="informers-synced"))

    async def _announce(self, synced: asyncio.Event) -> None:
        started = time.monotonic()
        await asyncio.gather(*(i.synced.wait() for i in self.informers))
        synced.set()
        log.info(
            "caches synced: %d informers in %.1fs", len(self.informers), time.monotonic() - started
        )

    async def stop(self) -> None:
        tasks: list[asyncio.Task[Any]] = [*self._tasks, *self.shared.crd_waits.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks = []
        await self.configs.close()
