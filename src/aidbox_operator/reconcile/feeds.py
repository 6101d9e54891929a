"""What the informers follow and where their events go: the Controller's store and queue.

- Deployments, Services, PodDisruptionBudgets, ServiceMonitors and Pods: only those labelled
  as the operator's (a server-side label selector), in full.
- ConfigMaps and Secrets: metadata only. Most are nothing to the operator (Helm release
  Secrets are ~100 KB each and a cluster has thousands); of the ones an AidboxCluster
  references, a newer resourceVersion is read with one GET and kept as a digest and key names.

The workers wait until every informer has listed once (`Controller.caches_synced`): a reconcile
then never mistakes a child it has not received yet for a missing one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Any

import aiohttp

from aidbox_operator.model.constants import INSTANCE_LABEL, MANAGED_BY, MANAGED_BY_LABEL
from aidbox_operator.reconcile.controller import DELETED, Controller
from aidbox_operator.reconcile.informer import Informer, Key, Scope, Shared, scopes_for
from aidbox_operator.reconcile.kube import (
    CONFIGMAPS,
    DEPLOYMENTS,
    PDBS,
    PODS,
    SECRETS,
    SERVICE_MONITORS,
    SERVICES,
    ApiError,
    ResourceKind,
)
from aidbox_operator.reconcile.store import ChildKey

log = logging.getLogger(__name__)
OWNED_SELECTOR = f"{MANAGED_BY_LABEL}={MANAGED_BY}"
CHILDREN = (DEPLOYMENTS, SERVICES, PDBS, SERVICE_MONITORS)


def _resource_version(body: dict[str, Any]) -> int:
    try:
        return int(body["metadata"]["resourceVersion"])
    except (KeyError, TypeError, ValueError):
        return -1


class ChildFeed:
    def __init__(self, controller: Controller, kind: ResourceKind) -> None:
        self.controller = controller
        self.kind = kind.kind

    def event(self, event_type: str, body: dict[str, Any]) -> None:
        self.controller.observe_child(event_type, body)

    def relisted(self, scope: Scope, present: set[Key], resource_version: int) -> None:
        store = self.controller.store
        for kind, namespace, name in store.child_keys(self.kind):
            if scope.accepts(namespace) and (namespace, name) not in present:
                body = store.child(kind, namespace, name)
                if body is not None:
                    self.controller.observe_child(DELETED, body)


class PodFeed:
    def __init__(self, controller: Controller) -> None:
        self.controller = controller

    def event(self, event_type: str, body: dict[str, Any]) -> None:
        self.controller.observe_pod(event_type, body)

    def relisted(self, scope: Scope, present: set[Key], resource_version: int) -> None:
        for (namespace, cluster), pods in list(self.controller.store.pods.items()):
            if not scope.accepts(namespace):
                continue
            for name in [n for n in pods if (namespace, n) not in present]:
                labels = {MANAGED_BY_LABEL: MANAGED_BY, INSTANCE_LABEL: cluster}
                gone = {"metadata": {"namespace": namespace, "name": name, "labels": labels}}
                self.controller.observe_pod(DELETED, gone)


class ReferencedConfigs:
    """ConfigMap/Secret metadata in; summaries of the referenced ones in the store."""

    def __init__(self, controller: Controller) -> None:
        self.controller = controller
        self.store = controller.store
        self._reading: dict[ChildKey, asyncio.Task[None]] = {}
        self._again: set[ChildKey] = set()

    def feed(self, kind: ResourceKind) -> ConfigFeed:
        return ConfigFeed(self, kind)

    def observe(self, kind: ResourceKind, event_type: str, meta: dict[str, Any]) -> None:
        ref = (kind.kind, str(meta["metadata"]["namespace"]), str(meta["metadata"]["name"]))
        if not self.store.is_referenced(*ref):
            self.store.configs.pop(ref, None)  # nobody points at it (any more)
            return
        version = _resource_version(meta)
        if event_type == DELETED:
            self._record(ref, None, version)
            return
        known = self.store.configs.get(ref)
        if known is None or version > known.resource_version:
            self._read(ref)

    def relisted(self, kind: ResourceKind, scope: Scope, present: set[Key], version: int) -> None:
        for ref in list(self.store.references):
            ref_kind, namespace, name = ref
            vanished = (namespace, name) not in present
            if ref_kind == kind.kind and scope.accepts(namespace) and vanished:
                self._record(ref, None, version)

    def _record(self, ref: ChildKey, body: dict[str, Any] | None, deleted_at: int = -1) -> None:
        if self.store.put_config(*ref, body, deleted_at=deleted_at):
            for cluster in sorted(self.store.references.get(ref, ())):
                self.controller.queue.add(cluster)

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
                    body = await self.controller.client.get(
                        SECRETS if kind == "Secret" else CONFIGMAPS, namespace, name
                    )
                except (ApiError, aiohttp.ClientError, OSError, TimeoutError) as err:
                    failures += 1
                    delay = min(30.0, 0.5 * 2**failures)
                    log.warning("reading %s %s/%s: %s", kind, namespace, name, err)
                    await asyncio.sleep(delay)
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

    def relisted(self, scope: Scope, present: set[Key], resource_version: int) -> None:
        self.configs.relisted(self.kind, scope, present, resource_version)


class Informers:
    """Every informer of one operator process; `start` before the Controller's workers."""

    def __init__(self, controller: Controller, namespaces: Sequence[str] = ()) -> None:
        self.controller = controller
        self.configs = ReferencedConfigs(controller)
        self.informers: list[Informer] = []
        client = controller.client
        shared = self.shared = Shared()
        for scope in scopes_for(namespaces):
            for kind in CHILDREN:
                feed = ChildFeed(controller, kind)
                self.informers.append(
                    Informer(
                        client, kind, scope, feed, label_selector=OWNED_SELECTOR, shared=shared
                    )
                )
            pods = PodFeed(controller)
            self.informers.append(
                Informer(client, PODS, scope, pods, label_selector=OWNED_SELECTOR, shared=shared)
            )
            for kind in (CONFIGMAPS, SECRETS):
                configs = self.configs.feed(kind)
                self.informers.append(
                    Informer(client, kind, scope, configs, metadata_only=True, shared=shared)
                )
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self.controller.caches_synced.clear()
        self._tasks = [
            asyncio.create_task(i.run(), name=f"informer-{i.name}") for i in self.informers
        ]
        self._tasks.append(asyncio.create_task(self._announce_synced(), name="informers-synced"))

    async def _announce_synced(self) -> None:
        started = time.monotonic()
        await asyncio.gather(*(i.synced.wait() for i in self.informers))
        self.controller.caches_synced.set()
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
