"""One reconcile pass for one AidboxCluster: observe, judge, apply what differs, report.

A pass over a cluster that is already as wanted makes no write request: children are compared
locally (applied-hash annotation plus a field-by-field check for drift), the status is written
only when it changed, and Events are posted only for real changes. Nothing that another owner
holds is ever written: such an object stops the pass with a ResourceConflict.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from aidbox_operator.model import AidboxCluster, ClusterStatus
from aidbox_operator.reconcile.aidbox_health import AidboxHealth
from aidbox_operator.reconcile.auth_keys import KeysKeeper, KeysPlan, KeysRaced, plan_keys
from aidbox_operator.reconcile.children import Child, ChildApplier
from aidbox_operator.reconcile.fights import WriterFights
from aidbox_operator.reconcile.observe import Configs, Lookups, Observer
from aidbox_operator.reconcile.report import StatusReporter
from aidbox_operator.reconcile.result import PassResult
from aidbox_operator.reconcile.store import Key, ObjectStore
from aidbox_operator.render import (
    RenderContext,
    config_hash,
    effective_replicas,
    render_cluster,
    selector_string,
)
from aidbox_operator.runtime.client import KubeClient
from aidbox_operator.runtime.events import EventRecorder
from aidbox_operator.status import (
    Blocker,
    Observation,
    invalid_spec_blocker,
    missing_blocker,
    pause_blocker,
    version_blocker,
)
from aidbox_operator.status.ownership import judge

# Nothing announces that a foreign object went away: look again this often.
CONFLICT_RETRY_SECONDS = 5.0


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _digest(configs: Configs) -> str:
    return config_hash(
        {
            f"{kind}/{name}": (s.digest if s.exists else None)
            for (kind, _, name), s in sorted(configs.items())
        }
    )


class ClusterReconciler:
    def __init__(
        self,
        client: KubeClient,
        store: ObjectStore,
        recorder: EventRecorder,
        clock: Callable[[], str] = utc_now,
        fights: WriterFights | None = None,
        health: AidboxHealth | None = None,
    ) -> None:
        self.store = store
        self.recorder = recorder
        self.clock = clock
        self.observer = Observer(client, store)
        self.children = ChildApplier(self.observer, fights or WriterFights())
        self.keys = KeysKeeper(client, store)
        self.reporter = StatusReporter(client, store, recorder, clock)
        self.health = health or AidboxHealth(enabled=False)

    async def reconcile(self, key: Key) -> PassResult:
        result = PassResult()
        body = self.store.cluster(key)
        if body is None or body["metadata"].get("deletionTimestamp"):
            # Owner references make the garbage collector remove the children.
            return result
        previous = ClusterStatus.model_validate(body.get("status") or {})
        try:
            cluster = AidboxCluster.model_validate(body)
        except ValidationError as err:
            obs = await self._invalid(body, previous, invalid_spec_blocker(err))
        else:
            try:
                obs = await self._pass(cluster, result)
            except KeysRaced:
                result.look_again(0.1)  # judge the Secret that appeared on a fresh pass
                return result
        result.blocked = obs.blocker.reason if obs.blocker else ""
        await self.reporter.report(body, obs, previous, result)
        for reason, message in result.changes:
            await self.recorder.record(body, "Normal", reason, message, self.clock())
        for reason, message in result.warnings:
            await self.recorder.record(body, "Warning", reason, message, self.clock())
        return result

    async def _own_deployment(
        self, cluster: AidboxCluster, lookups: Lookups | None = None
    ) -> dict[str, Any] | None:
        body = await self.observer.child(
            "Deployment", cluster.namespace, cluster.name, lookups=lookups
        )
        return body if body and judge(body, cluster.name, cluster.metadata.uid) == "ours" else None

    async def _observation(
        self,
        cluster: AidboxCluster,
        missing: list[str],
        lookups: Lookups | None = None,
        **extra: Any,
    ) -> Observation:
        deployment = await self._own_deployment(cluster, lookups)
        running = (deployment or {}).get("spec", {}).get("replicas")
        replicas = effective_replicas(cluster, None if running is None else int(running))
        key = (cluster.namespace, cluster.name)
        pods = tuple(self.store.pods.get(key, {}).values())
        return Observation(
            generation=cluster.metadata.generation,
            desired_replicas=replicas,
            selector=selector_string(cluster),
            deployment=deployment,
            pods=pods,
            missing=tuple(missing),
            versions=await self.health.versions(key, pods, cluster.spec.port),
            **extra,
        )

    async def _pass(self, cluster: AidboxCluster, result: PassResult) -> Observation:
        configs, missing = await self.observer.configs(cluster)
        lookups: Lookups = {}
        base = await self._observation(cluster, missing, lookups)
        blocker = version_blocker(cluster, base.desired_replicas) or missing_blocker(
            cluster.namespace, missing
        )
        plan = plan_keys(cluster, configs, base.deployment)
        if blocker is None and plan.foreign:
            blocker = await self.keys.conflict(cluster, plan.name)
            result.look_again(CONFLICT_RETRY_SECONDS)
        blocker = blocker or plan.blocker
        if blocker is not None:
            return await self._observation(cluster, missing, lookups, blocker=blocker, pending=True)
        context = RenderContext(_digest(configs), plan.wanted, base.desired_replicas)
        manifests = render_cluster(cluster, context)
        children = await self.children.observe(cluster, manifests, lookups)
        if blocker := await self.children.conflict(cluster, children):
            result.look_again(CONFLICT_RETRY_SECONDS)
            return await self._observation(cluster, missing, lookups, blocker=blocker, pending=True)
        if paused := pause_blocker(cluster):
            pending = bool(plan.absent) or not all(c.in_sync for c in children)
            return await self._observation(
                cluster, missing, lookups, blocker=paused, pending=pending
            )
        return await self._apply(cluster, plan, (configs, context), children, missing, result)

    async def _apply(
        self,
        cluster: AidboxCluster,
        plan: KeysPlan,
        rendered_from: tuple[Configs, RenderContext],
        children: list[Child],
        missing: list[str],
        result: PassResult,
    ) -> Observation:
        if plan.absent:
            await self.keys.ensure(cluster, plan, result)
            configs, context = rendered_from
            keys_ref = ("Secret", cluster.namespace, plan.name)
            configs[keys_ref] = await self.observer.config(keys_ref)
            # The new Secret's digest is part of the config hash: render again.
            context = replace(context, config_hash=_digest(configs))
            manifests = render_cluster(cluster, context)
            children = [
                Child(m, c.observed, c.ownership) for m, c in zip(manifests, children, strict=True)
            ]
        blocker: Blocker | None = await self.children.apply_all(children, result)
        if blocker is not None:
            result.refused = True
            return await self._observation(cluster, missing, blocker=blocker, pending=True)
        await self.children.prune(cluster, [c.manifest for c in children], result)
        return await self._observation(cluster, missing, problems=tuple(result.problems))

    async def _invalid(
        self, body: dict[str, Any], previous: ClusterStatus, blocker: Blocker
    ) -> Observation:
        meta = body["metadata"]
        deployment = await self.observer.child("Deployment", meta["namespace"], meta["name"])
        if deployment and judge(deployment, meta["name"], meta.get("uid")) != "ours":
            deployment = None
        pods = self.store.pods.get((meta["namespace"], meta["name"]), {}).values()
        desired = int((deployment or {}).get("spec", {}).get("replicas", 0))
        return Observation(
            generation=meta.get("generation"),
            desired_replicas=desired,
            selector=previous.selector,
            deployment=deployment,
            pods=tuple(pods),
            blocker=blocker,
        )
