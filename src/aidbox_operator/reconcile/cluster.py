"""One reconcile pass for one AidboxCluster: observe, decide, apply what differs, report.

A pass over a cluster that is already as wanted makes no write request: children are compared
locally (applied-hash annotation plus a field-by-field check for drift), the status is written
only when it changed, and Events are posted only for real changes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from aidbox_operator.metrics import CONFIG_ROLLOUTS, DRIFT_REPAIRS
from aidbox_operator.model import AidboxCluster, ClusterStatus, parse_image_version
from aidbox_operator.model.constants import (
    API_GROUP,
    API_VERSION,
    APPLIED_HASH_ANNOTATION,
    CONFIG_HASH_ANNOTATION,
    MIN_HA_VERSION,
    PAUSED_ANNOTATION,
    PLURAL,
)
from aidbox_operator.model.status import DEGRADED, PROGRESSING, READY
from aidbox_operator.reconcile.adopt import existing_own
from aidbox_operator.reconcile.diff import is_subset
from aidbox_operator.reconcile.events import EventRecorder
from aidbox_operator.reconcile.keys import build_keys_secret, generate_key_data
from aidbox_operator.reconcile.kube import (
    KINDS_BY_NAME,
    PDBS,
    SECRETS,
    SERVICE_MONITORS,
    ApiError,
    KubeClient,
    ResourceKind,
)
from aidbox_operator.reconcile.status import Blocker, compute_status
from aidbox_operator.reconcile.store import ChildKey, ConfigSummary, Key, ObjectStore
from aidbox_operator.render import (
    RenderContext,
    config_hash,
    render_cluster,
    selector_string,
    stable_hash,
)
from aidbox_operator.render.secrets import (
    AUTH_KEYS,
    CLUSTER_SECRET_KEY,
    PRIVATE_KEY,
    auth_keys_secret_name,
    is_multibox,
)

log = logging.getLogger(__name__)
CLUSTERS = ResourceKind(f"{API_GROUP}/{API_VERSION}", "AidboxCluster", PLURAL)


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class PassResult:
    """What one pass did, for metrics and tests."""

    # (Event reason, message) for each real change made.
    changes: list[tuple[str, str]] = field(default_factory=list)
    # (reason, message) of problems that do not stop the cluster but degrade it.
    problems: list[tuple[str, str]] = field(default_factory=list)
    status_written: bool = False
    blocked: str = ""
    phase: str = ""
    seconds: float = 0.0


def _config_hash_of(deployment: dict[str, Any]) -> str | None:
    template = deployment.get("spec", {}).get("template", {})
    annotations = template.get("metadata", {}).get("annotations") or {}
    value = annotations.get(CONFIG_HASH_ANNOTATION)
    return str(value) if value is not None else None


def _observed_by_controller(deployment: dict[str, Any]) -> bool:
    observed = (deployment.get("status") or {}).get("observedGeneration", 0)
    return bool(observed >= deployment["metadata"].get("generation", 0))


def version_blocker(cluster: AidboxCluster) -> Blocker | None:
    version = parse_image_version(cluster.spec.image)
    year, month = MIN_HA_VERSION
    if cluster.spec.replicas > 1 and version.older_than(year, month):
        return Blocker(
            "UnsupportedVersion",
            f"image {cluster.spec.image} runs Aidbox {version.tag}, which cannot run "
            f"{cluster.spec.replicas} replicas side by side (needs {year:02d}{month:02d} or "
            "newer): use a newer image or replicas: 1; the running Deployment is left as it was",
            invalid=True,
        )
    return None


def describe_validation_error(err: ValidationError) -> str:
    parts = []
    for item in err.errors()[:5]:
        path = ".".join(str(p) for p in item["loc"])
        parts.append(f"{path}: {item['msg']}")
    return "invalid spec: " + "; ".join(parts)


class ClusterReconciler:
    def __init__(
        self,
        client: KubeClient,
        store: ObjectStore,
        recorder: EventRecorder,
        clock: Callable[[], str] = utc_now,
    ) -> None:
        self.client = client
        self.store = store
        self.recorder = recorder
        self.clock = clock

    async def reconcile(self, key: Key) -> PassResult:
        started = time.monotonic()
        result = PassResult()
        body = self.store.cluster(key)
        if body is None or body["metadata"].get("deletionTimestamp"):
            # Owner references make the garbage collector remove the children.
            return result
        previous = ClusterStatus.model_validate(body.get("status") or {})
        try:
            cluster = AidboxCluster.model_validate(body)
        except ValidationError as err:
            invalid = Blocker("InvalidSpec", describe_validation_error(err), invalid=True)
            await self._report(body, key, previous, None, invalid, [], 0, result)
            return result
        # Never reconciled before: its children cannot exist yet (apply would be right even if
        # they did), so cache misses need no GET.
        fresh = previous.observed_generation is None
        refs = self._references(cluster)
        self.store.set_references(key, set(refs))
        keys_ref = ("Secret", cluster.namespace, auth_keys_secret_name(cluster))
        configs = {
            ref: await self._config(ref, assume_absent=fresh and ref == keys_ref) for ref in refs
        }
        missing = [
            f"{kind}/{name}"
            for (kind, _, name), required in refs.items()
            if required and not configs[(kind, cluster.namespace, name)].exists
        ]
        blocker = version_blocker(cluster)
        if blocker is None and cluster.metadata.annotations.get(PAUSED_ANNOTATION) == "true":
            blocker = Blocker(
                "Paused",
                f"reconciliation is paused by the {PAUSED_ANNOTATION} annotation: no change is "
                "applied or repaired until it is removed; status is still reported",
                invalid=False,
                degrades=False,
            )
        if blocker is None and missing:
            blocker = Blocker(
                "MissingReference",
                f"{', '.join(missing)} not found in namespace {cluster.namespace}; the "
                "cluster proceeds as soon as it exists",
                invalid=False,
            )
        if blocker is None:
            generated = await self._ensure_auth_keys(cluster, configs, result)
            if generated:
                configs[keys_ref] = await self._config(keys_ref)
            digest = config_hash(
                {
                    f"{kind}/{name}": (s.digest if s.exists else None)
                    for (kind, _, name), s in sorted(configs.items())
                }
            )
            manifests = render_cluster(cluster, RenderContext(digest, generated))
            for manifest in manifests:
                try:
                    change = await self._apply(manifest, fresh)
                except ApiError as err:
                    if manifest["kind"] != "ServiceMonitor" or not err.not_found:
                        raise
                    # Optional extra whose CRD (Prometheus Operator) is not installed.
                    result.problems.append(
                        (
                            "ServiceMonitorUnavailable",
                            "spec.metrics.serviceMonitor.enabled is set but the cluster has no "
                            "monitoring.coreos.com/v1 ServiceMonitor kind (install the Prometheus "
                            "Operator's CRDs); the metrics port and Service port are in place",
                        )
                    )
                    continue
                if change:
                    result.changes.append(change)
            result.changes += await self._prune(cluster, manifests)
        else:
            result.blocked = blocker.reason
        await self._report(
            body, key, previous, cluster, blocker, missing, cluster.spec.replicas, result
        )
        for reason, message in result.changes:
            await self.recorder.record(body, "Normal", reason, message, self.clock())
        result.seconds = time.monotonic() - started
        return result

    # -- observation -----------------------------------------------------------------------
    def _references(self, cluster: AidboxCluster) -> dict[ChildKey, bool]:
        """Referenced ConfigMap/Secret (plus the generated keys Secret) -> required?"""
        spec = cluster.spec
        refs: dict[ChildKey, bool] = {
            (
                "ConfigMap",
                cluster.namespace,
                spec.config_map_name(cluster.name),
            ): not spec.config_map_ref.optional,
            (
                "Secret",
                cluster.namespace,
                spec.secret_name(cluster.name),
            ): not spec.secret_ref.optional,
        }
        if spec.auth_keys.generate:
            refs.setdefault(("Secret", cluster.namespace, auth_keys_secret_name(cluster)), False)
        return refs

    async def _config(self, ref: ChildKey, assume_absent: bool = False) -> ConfigSummary:
        cached = self.store.configs.get(ref)
        if cached is not None:
            return cached
        if assume_absent:
            return ConfigSummary(exists=False)
        kind, namespace, name = ref
        body = await self.client.get(KINDS_BY_NAME[kind], namespace, name)
        self.store.put_config(kind, namespace, name, body)
        return self.store.configs[ref]

    async def _observed_child(
        self, kind: str, namespace: str, name: str, fresh: bool = False
    ) -> dict[str, Any] | None:
        cached = self.store.child(kind, namespace, name)
        if cached is not None or self.store.known_absent(kind, namespace, name):
            return cached
        if fresh:
            return None
        body = await self.client.get(KINDS_BY_NAME[kind], namespace, name)
        if body is None:
            self.store.mark_absent(kind, namespace, name)
        else:
            body.setdefault("kind", kind)
            self.store.put_child(body)
        return body

    # -- actions ---------------------------------------------------------------------------
    async def _ensure_auth_keys(
        self,
        cluster: AidboxCluster,
        configs: dict[ChildKey, ConfigSummary],
        result: PassResult,
    ) -> tuple[str, ...]:
        if not cluster.spec.auth_keys.generate:
            return ()
        ns = cluster.namespace
        user_keys: set[str] = {e.name for e in cluster.spec.env}
        for kind, name in (
            ("ConfigMap", cluster.spec.config_map_name(cluster.name)),
            ("Secret", cluster.spec.secret_name(cluster.name)),
        ):
            user_keys |= configs[(kind, ns, name)].keys
        wanted: set[str] = set()
        if PRIVATE_KEY not in user_keys:
            wanted |= set(AUTH_KEYS)
        if is_multibox(parse_image_version(cluster.spec.image).repository) and (
            CLUSTER_SECRET_KEY not in user_keys
        ):
            wanted.add(CLUSTER_SECRET_KEY)
        if not wanted:
            return ()
        name = auth_keys_secret_name(cluster)
        keys = ("Secret", ns, name)
        existing = configs[keys]
        absent = frozenset(wanted - existing.keys)
        if absent:
            data = await generate_key_data(absent)
            if not existing.exists:
                try:
                    body = await self.client.create(SECRETS, ns, build_keys_secret(cluster, data))
                except ApiError as err:
                    if not err.conflict:
                        raise
                    # Created by an earlier, interrupted pass: keep its keys, add what is missing.
                    body = await existing_own(self.client, SECRETS, cluster, name)
                    self.store.put_config("Secret", ns, name, body)
                    configs = {**configs, ("Secret", ns, name): self.store.configs[keys]}
                    return await self._ensure_auth_keys(cluster, configs, result)
                result.changes.append(("Created", f"Secret {name} with shared JWT keys"))
            else:
                # Add only what is missing: existing keys are never regenerated.
                body = await self.client.request(
                    "PATCH",
                    SECRETS.path(ns, name),
                    body={"data": data},
                    content_type="application/merge-patch+json",
                    verb="patch",
                )
                result.changes.append(
                    ("Updated", f"Secret {name}: added {', '.join(sorted(absent))}")
                )
            self.store.put_config("Secret", ns, name, body)
        return tuple(k for k in (*AUTH_KEYS, CLUSTER_SECRET_KEY) if k in wanted)

    async def _apply(self, manifest: dict[str, Any], fresh: bool) -> tuple[str, str] | None:
        kind = manifest["kind"]
        meta = manifest["metadata"]
        applied_hash = stable_hash(manifest)
        meta.setdefault("annotations", {})[APPLIED_HASH_ANNOTATION] = applied_hash
        observed = await self._observed_child(kind, meta["namespace"], meta["name"], fresh)
        if observed is not None:
            observed_hash = (observed["metadata"].get("annotations") or {}).get(
                APPLIED_HASH_ANNOTATION
            )
            if observed_hash == applied_hash and is_subset(manifest, observed):
                return None
            action = "Updated" if observed_hash != applied_hash else "DriftRepaired"
            if action == "DriftRepaired":
                DRIFT_REPAIRS.labels(kind=kind).inc()
        elif self.store.seen_before(kind, meta["namespace"], meta["name"]):
            # It existed and someone deleted it.
            action = "Recreated"
            DRIFT_REPAIRS.labels(kind=kind).inc()
        else:
            action = "Created"
        note = ""
        if (
            observed is not None
            and kind == "Deployment"
            and _config_hash_of(observed)
            not in (
                None,
                _config_hash_of(manifest),
            )
        ):
            CONFIG_ROLLOUTS.inc()
            note = " (referenced configuration changed: rolling restart)"
        body = await self.client.apply(manifest)
        self.store.put_child(body)
        return action, f"{kind} {meta['name']}{note}"

    async def _prune(
        self, cluster: AidboxCluster, manifests: list[dict[str, Any]]
    ) -> list[tuple[str, str]]:
        """Delete children the spec no longer wants (a PDB once replicas drop below 2)."""
        wanted = {m["kind"] for m in manifests}
        changes = []
        for kind in (PDBS, SERVICE_MONITORS):
            if kind.kind in wanted:
                continue
            # Both kinds are watched: the store knows whether one exists (a late watch event
            # re-queues the cluster), so pruning costs no request when there is nothing to do.
            if self.store.has_child(kind.kind, cluster.namespace, cluster.name):
                await self.client.delete(kind, cluster.namespace, cluster.name)
                self.store.drop_child(kind.kind, cluster.namespace, cluster.name)
                self.store.mark_absent(kind.kind, cluster.namespace, cluster.name)
                changes.append(("Deleted", f"{kind.kind} {cluster.name}"))
        return changes

    # -- status and events -----------------------------------------------------------------
    async def _report(
        self,
        body: dict[str, Any],
        key: Key,
        previous: ClusterStatus,
        cluster: AidboxCluster | None,
        blocker: Blocker | None,
        missing: list[str],
        desired: int,
        result: PassResult,
    ) -> None:
        namespace, name = key
        deployment = await self._observed_child("Deployment", namespace, name)
        if blocker is None and deployment is not None and not _observed_by_controller(deployment):
            # The Deployment controller has not seen the latest change yet (an annotation edit
            # bumps a Deployment's generation too); its next status update brings us back.
            return
        pods = self.store.pods.get(key, {}).values()
        live = sum(1 for p in pods if not p.terminating)
        if deployment is not None and live < int(
            (deployment.get("status") or {}).get("replicas", 0)
        ):
            # Pod events lag the Deployment's count (after a restart, until the pod listing
            # arrives): judging pods now could report problems that are not there. The
            # missing pods' events bring us back.
            return
        if cluster is not None and not cluster.spec.manage_replicas and deployment:
            desired = int(deployment["spec"].get("replicas", desired))
        selector = selector_string(cluster) if cluster else previous.selector
        now = self.clock()
        status = compute_status(
            generation=body["metadata"].get("generation"),
            desired_replicas=desired,
            selector=selector,
            deployment=deployment,
            pods=pods,
            blocker=blocker,
            missing=missing,
            issues=result.problems,
            previous=previous,
            now=now,
        )
        result.phase = status.phase
        if status.to_api() == previous.to_api():
            return
        try:
            updated = await self.client.patch_status(CLUSTERS, namespace, name, status.to_api())
        except ApiError as err:
            if err.not_found:
                return  # deleted meanwhile
            raise
        result.status_written = True
        self.store.put_cluster(updated)
        await self._transition_events(body, previous, status, now)

    async def _transition_events(
        self, body: dict[str, Any], before: ClusterStatus, after: ClusterStatus, now: str
    ) -> None:
        old_ready, new_ready = before.condition(READY), after.condition(READY)
        if (
            new_ready
            and new_ready.status == "True"
            and (not old_ready or old_ready.status != "True")
        ):
            await self.recorder.record(body, "Normal", "ClusterReady", new_ready.message, now)
        old_prog, new_prog = before.condition(PROGRESSING), after.condition(PROGRESSING)
        was_paused = bool(old_prog and old_prog.reason == "Paused")
        is_paused = bool(new_prog and new_prog.reason == "Paused")
        if is_paused != was_paused:
            message = new_prog.message if is_paused and new_prog else "reconciliation resumed"
            await self.recorder.record(
                body, "Normal", "Paused" if is_paused else "Resumed", message, now
            )
        old_bad, new_bad = before.condition(DEGRADED), after.condition(DEGRADED)
        if (
            new_bad
            and new_bad.status == "True"
            and (not old_bad or not old_bad.same_state(new_bad))
        ):
            await self.recorder.record(body, "Warning", new_bad.reason, new_bad.message, now)
        if old_bad and old_bad.status == "True" and new_bad and new_bad.status == "False":
            await self.recorder.record(
                body, "Normal", "Recovered", f"no longer {old_bad.reason}", now
            )
