"""One reconcile pass for one AidboxCluster: observe, judge, apply what differs, report.

A pass over a cluster that is already as wanted makes no write request: children are compared
locally (applied-hash annotation plus a field-by-field check for drift), the status is written
only when it changed, and Events are posted only for real changes. Nothing that another owner
holds is ever written: such an object stops the pass with a ResourceConflict.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from aidbox_operator.model import AidboxCluster, ClusterStatus
from aidbox_operator.model.status import PinnedImage
from aidbox_operator.reconcile.aidbox_health import AidboxHealth
from aidbox_operator.reconcile.auth_keys import KeysKeeper, KeysPlan, KeysRaced, plan_keys
from aidbox_operator.reconcile.children import (
    CLAIM_ORDER,
    KIND_MISSING,
    Child,
    ChildApplier,
    ChildExists,
)
from aidbox_operator.reconcile.fights import WriterFights
from aidbox_operator.reconcile.images import (
    RESOLVE_RETRY_SECONDS,
    ImagePinner,
    ImagePlan,
    TagResolver,
)
from aidbox_operator.reconcile.observe import Configs, Lookups, Observer, envfrom_keys
from aidbox_operator.reconcile.on_channel import ChannelView, channel_view
from aidbox_operator.reconcile.pacing import RolloutPacing
from aidbox_operator.reconcile.report import StatusReporter
from aidbox_operator.reconcile.result import PassResult
from aidbox_operator.reconcile.store import ChildKey, Key, ObjectStore
from aidbox_operator.render import (
    RenderContext,
    config_hash,
    effective_replicas,
    render_cluster,
    selector_string,
)
from aidbox_operator.render.autoscaling import replicas_owner
from aidbox_operator.render.exposure import cluster_url
from aidbox_operator.runtime.client import KubeClient
from aidbox_operator.runtime.diff import is_subset
from aidbox_operator.runtime.events import EventRecorder
from aidbox_operator.runtime.pacer import Pacer
from aidbox_operator.status import (
    Blocker,
    Observation,
    invalid_spec_blocker,
    missing_blocker,
    pause_blocker,
    version_blocker,
)
from aidbox_operator.status.ownership import judge
from aidbox_operator.status.upgrade import downgrade_blocker, recreates, template_image

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


@dataclass(frozen=True)
class Rendered:
    """What a pass rendered from, handed to the apply step."""

    configs: Configs
    context: RenderContext
    missing: list[str]
    pinned: PinnedImage | None
    previous: ClusterStatus
    # Why the channel's release waits (None: not on a channel, or nothing waits).
    waiting: tuple[str, str] | None = None
    # The pass's lookups: what is made under a name they assumed free is only created.
    lookups: Lookups | None = None


class ClusterReconciler:
    def __init__(
        self,
        client: KubeClient,
        store: ObjectStore,
        recorder: EventRecorder,
        clock: Callable[[], str] = utc_now,
        fights: WriterFights | None = None,
        health: AidboxHealth | None = None,
        resolver: TagResolver | None = None,
        pacing: RolloutPacing | None = None,
        release_channels: bool = True,
        operator_namespace: str | None = None,
    ) -> None:
        self.store = store
        self.recorder = recorder
        self.clock = clock
        self.observer = Observer(client, store)
        self.children = ChildApplier(self.observer, fights or WriterFights())
        self.keys = KeysKeeper(client, store)
        self.reporter = StatusReporter(client, store, recorder, clock)
        self.health = health or AidboxHealth(enabled=False)
        # Where the operator runs, while it reads the pods' /health (a NetworkPolicy on the
        # pods lets it in); None: it reads nothing.
        self.health_reader = operator_namespace if self.health.enabled else None
        self.images = ImagePinner(client, resolver, clock)
        self.pacing = pacing or RolloutPacing(Pacer(0), store)
        self.release_channels = release_channels

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
            tried = await self._try(cluster, previous, result)
            if tried is None:
                result.look_again(0.1)  # judge the Secret that appeared on a fresh pass
                return result
            result, obs = tried
        result.blocked = obs.blocker.reason if obs.blocker else ""
        await self.reporter.report(body, obs, previous, result)
        self.pacing.passed(key)
        for reason, message in result.changes:
            await self.recorder.record(body, "Normal", reason, message, self.clock())
        for reason, message in result.warnings:
            await self.recorder.record(body, "Warning", reason, message, self.clock())
        return result

    async def _try(
        self, cluster: AidboxCluster, previous: ClusterStatus, result: PassResult
    ) -> tuple[PassResult, Observation] | None:
        """The pass. On a cluster no pass has reported on yet and of which nothing labelled is
        cached (a pass that made children and stopped before its report left them labelled),
        its first try assumes the names of what it makes free instead of reading them (see
        Lookups); if one is taken, nothing there changed, and the pass runs again asking the
        API for every name, as later passes do. None: the keys Secret appeared meanwhile
        (the Secret watch had not shown it yet: judge it on a fresh pass). What a try that
        found a name taken had made is deleted before the second try."""
        fresh = (
            not previous.observed_generation  # the CRD defaults it to 0; a report sets >= 1
            and self.children.creates_only
            and not self.store.knows_workload_of((cluster.namespace, cluster.name))
        )
        lookups = Lookups(assume_absent=fresh)
        try:
            return result, await self._pass(cluster, previous, result, lookups)
        except KeysRaced:
            return None
        except ChildExists:
            # Made nothing then, as far as anyone can tell: no Events of that try either.
            await self.children.undo(lookups.made)
        again = PassResult()
        try:
            return again, await self._pass(cluster, previous, again, Lookups())
        except KeysRaced:
            return None

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
        key, spec = (cluster.namespace, cluster.name), cluster.spec
        pods = tuple(self.store.pods.get(key, {}).values())
        return Observation(
            generation=cluster.metadata.generation,
            desired_replicas=replicas,
            selector=selector_string(cluster),
            deployment=deployment,
            pods=pods,
            missing=tuple(missing),
            versions=await self.health.versions(key, pods, cluster.spec.port),
            replicas_left_to=replicas_owner(cluster) if spec.replicas_left_to_others else None,
            spec_replicas=spec.replicas,
            **extra,
        )

    async def _pass(
        self,
        cluster: AidboxCluster,
        previous: ClusterStatus,
        result: PassResult,
        lookups: Lookups,
    ) -> Observation:
        on_channel = self._channel(cluster, previous, result)
        if on_channel is not None:
            cluster = on_channel.cluster
        configs, missing = await self.observer.configs(cluster, lookups)
        base = await self._observation(cluster, missing, lookups)
        image = await self._image(cluster, previous, result, _template(base))
        base = replace(base, pinned=image.pinned)
        blocker = (
            (on_channel.blocker if on_channel else None)
            or version_blocker(cluster, base.desired_replicas)
            or image.blocker
            or _downgrade(cluster, image, base, previous)
            or missing_blocker(cluster.namespace, missing)
        )
        plan = plan_keys(cluster, configs, base.deployment)
        if blocker is None and plan.foreign:
            plan, blocker = await self._claim_keys(cluster, plan, configs, base, result)
        blocker = blocker or plan.blocker
        held = {"pinned": image.pinned, "pending": True}
        if blocker is not None:
            return await self._observation(cluster, missing, lookups, blocker=blocker, **held)
        recreate = recreates(cluster.spec.upgrade.strategy, image.image, _template(base), base.pods)
        context = RenderContext(
            _digest(configs),
            plan.wanted,
            base.desired_replicas,
            image=image.image,
            version=image.version,
            recreate=recreate,
            user_keys=envfrom_keys(cluster, configs),
            deployment_exists=base.deployment is not None,
            operator_namespace=self.health_reader,
        )
        manifests = render_cluster(cluster, context)
        if image.deferred and _template_changes(manifests[0], base.deployment):
            # The pods roll anyway: this rollout can take the pinned digest along.
            image = await self._image(cluster, previous, result)
            held["pinned"] = image.pinned
            blocker = image.blocker or _downgrade(cluster, image, base, previous)
            if blocker is not None:
                return await self._observation(cluster, missing, lookups, blocker=blocker, **held)
            context = replace(context, image=image.image, version=image.version)
            manifests = render_cluster(cluster, context)
        children = await self.children.observe(cluster, manifests, lookups)
        if blocker := await self.children.conflict(cluster, children):
            result.look_again(CONFLICT_RETRY_SECONDS)
            return await self._observation(cluster, missing, lookups, blocker=blocker, **held)
        if paused := pause_blocker(cluster):
            held["pending"] = bool(plan.absent) or not all(c.in_sync for c in children)
            return await self._observation(cluster, missing, lookups, blocker=paused, **held)
        waiting = on_channel.queued if on_channel else None
        rendered = Rendered(configs, context, missing, image.pinned, previous, waiting, lookups)
        return await self._apply(cluster, plan, rendered, children, result)

    async def _claim_keys(
        self,
        cluster: AidboxCluster,
        plan: KeysPlan,
        configs: Configs,
        base: Observation,
        result: PassResult,
    ) -> tuple[KeysPlan, Blocker | None]:
        """A keys Secret the cluster does not own: adopted if handed over (then planned
        again, as its own), else a conflict looked at again soon."""
        blocker = await self.keys.claim(cluster, plan.name, result)
        if blocker is not None:
            result.look_again(CONFLICT_RETRY_SECONDS)
            return plan, blocker
        ref = ("Secret", cluster.namespace, plan.name)
        configs[ref] = await self.observer.config(ref)
        return plan_keys(cluster, configs, base.deployment), None

    def _channel(
        self, cluster: AidboxCluster, previous: ClusterStatus, result: PassResult
    ) -> ChannelView | None:
        """For a cluster on a release channel: what it runs now (None: not on a channel)."""
        if not cluster.spec.channel:
            return None
        view = channel_view(cluster, previous, self.store, self.release_channels, self.clock())
        if view.retry is not None:
            result.look_again(view.retry)
        return view

    async def _image(
        self,
        cluster: AidboxCluster,
        previous: ClusterStatus,
        result: PassResult,
        running: str | None = None,
    ) -> ImagePlan:
        """The image to run; a new pin is kept in status before anything can run it."""
        image = await self.images.plan(cluster, previous.pinned_image, running)
        if image.blocker is not None:
            result.look_again(RESOLVE_RETRY_SECONDS)
        elif image.pinned is not None and image.pinned != previous.pinned_image:
            await self.reporter.record_pin(cluster, image.pinned)
        return image

    async def _apply(
        self,
        cluster: AidboxCluster,
        plan: KeysPlan,
        rendered: Rendered,
        children: list[Child],
        result: PassResult,
    ) -> Observation:
        missing, pinned = rendered.missing, rendered.pinned
        claimed, early = await self._claim(children, rendered.lookups, result)
        if plan.absent:
            children = await self._with_keys(cluster, plan, rendered, children, result)
        wanted = [c.manifest for c in children]
        now = datetime.strptime(self.clock(), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        children, queued, retry = self.pacing.gate(cluster, rendered.previous, children, now)
        if retry is not None:
            result.look_again(retry)
        children = [c for c in children if c.key not in claimed]
        blocker, landed = await self._apply_children(cluster, children, rendered.lookups, result)
        blocker = early or blocker
        if blocker is not None:
            result.refused = True
            return await self._observation(
                cluster,
                missing,
                blocker=blocker,
                pending=True,
                pinned=pinned,
                template_generation=landed,
            )
        await self.children.prune(cluster, wanted, result)
        return await self._observation(
            cluster,
            missing,
            url=served_url(cluster, result.problems),
            problems=tuple(result.problems),
            pinned=pinned,
            queued=rendered.waiting or queued,
            template_generation=landed,
        )

    async def _claim(
        self, children: list[Child], lookups: Lookups | None, result: PassResult
    ) -> tuple[set[ChildKey], Blocker | None]:
        """A new cluster's first try makes the children whose names it assumed free before
        anything else, the ones it may delete first and the Service last (CLAIM_ORDER): a name
        found taken (ChildExists) then ends the try having made only objects it can delete
        again, and before the keys Secret and any pod of the cluster exist. What it made,
        and a refusal of any of them (the Deployment is still made, as on any pass)."""
        if lookups is None or not lookups.assumed:
            return set(), None
        first = sorted(
            (c for c in children if c.key in lookups.assumed and c.key[0] in CLAIM_ORDER),
            key=lambda c: CLAIM_ORDER.index(c.key[0]),
        )
        blocker = await self.children.apply_all(first, result, lookups)
        return {c.key for c in first}, blocker

    async def _with_keys(
        self,
        cluster: AidboxCluster,
        plan: KeysPlan,
        rendered: Rendered,
        children: list[Child],
        result: PassResult,
    ) -> list[Child]:
        """Make or complete the keys Secret; the children rendered again with its digest."""
        await self.keys.ensure(cluster, plan, result)
        configs, context = rendered.configs, rendered.context
        keys_ref = ("Secret", cluster.namespace, plan.name)
        configs[keys_ref] = await self.observer.config(keys_ref)
        # The new Secret's digest is part of the config hash: render again.
        context = replace(context, config_hash=_digest(configs))
        manifests = render_cluster(cluster, context)
        return [Child(m, c.observed, c.ownership) for m, c in zip(manifests, children, strict=True)]

    async def _apply_children(
        self,
        cluster: AidboxCluster,
        children: list[Child],
        lookups: Lookups | None,
        result: PassResult,
    ) -> tuple[Blocker | None, int | None]:
        """Apply the children; also the generation whose Deployment landed (None: it did not).
        The Deployment goes on its own so that whether it landed is recorded even when a later
        child is refused."""
        ours = children[:1] if children and children[0].manifest["kind"] == "Deployment" else []
        blocker = await self.children.apply_all(ours, result, lookups)
        landed = cluster.metadata.generation if ours and blocker is None else None
        rest = children[len(ours) :]
        return blocker or await self.children.apply_all(rest, result, lookups), landed

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
            pinned=previous.pinned_image,
        )


def served_url(cluster: AidboxCluster, problems: list[tuple[str, str]]) -> str:
    """The URL the applied Ingress or HTTPRoute serves ("": none, or its kind is missing)."""
    if any(reason == KIND_MISSING["HTTPRoute"][0] for reason, _ in problems):
        return ""
    return cluster_url(cluster) or ""


def _template(obs: Observation) -> str | None:
    """The image the existing Deployment's pods are made from (None: no Deployment yet)."""
    return template_image(obs.deployment) if obs.deployment is not None else None


def _template_changes(wanted: dict[str, Any], deployment: dict[str, Any] | None) -> bool:
    """Whether applying `wanted` would replace the existing Deployment's pods."""
    if deployment is None:
        return True
    return not is_subset(wanted["spec"]["template"], deployment["spec"]["template"])


def _downgrade(
    cluster: AidboxCluster, image: ImagePlan, base: Observation, previous: ClusterStatus
) -> Blocker | None:
    """The guard judges changes only: a Deployment that already runs the wanted image (a
    downgrade allowed before, its annotation since removed) is left alone."""
    if _template(base) == image.image:
        return None
    return downgrade_blocker(
        cluster.spec.image, image.version, previous.version_record, cluster.metadata.annotations
    )
