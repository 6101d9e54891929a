"""Apply and prune the cluster's children: only objects this AidboxCluster owns are changed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aidbox_operator.metrics import CONFIG_ROLLOUTS, DRIFT_REPAIRS
from aidbox_operator.model import AidboxCluster
from aidbox_operator.model.constants import (
    APPLIED_HASH_ANNOTATION,
    CONFIG_HASH_ANNOTATION,
    FIELD_MANAGER,
    RESTARTED_AT_ANNOTATION,
)
from aidbox_operator.reconcile.fights import WriterFights, fight_message
from aidbox_operator.reconcile.kinds import KINDS_BY_NAME, OPTIONAL_CHILDREN, OPTIONAL_KINDS
from aidbox_operator.reconcile.observe import Lookups, Made, Observer
from aidbox_operator.reconcile.replicas import hand_over, needs_handover
from aidbox_operator.reconcile.result import PassResult
from aidbox_operator.runtime.client import JSON_PATCH, ApiError
from aidbox_operator.runtime.diff import is_subset
from aidbox_operator.status import Blocker
from aidbox_operator.status.ownership import (
    Ownership,
    conflict_blocker,
    describe_holder,
    judge,
    last_other_writer,
)
from aidbox_operator.status.upgrade import pod_annotation

# Optional kinds whose CRD may not be installed: the rest of the cluster is applied anyway.
KIND_MISSING = {
    "ServiceMonitor": (
        "ServiceMonitorUnavailable",
        "spec.metrics.serviceMonitor.enabled is set but the cluster has no "
        "monitoring.coreos.com/v1 ServiceMonitor kind (install the Prometheus Operator's CRDs); "
        "the metrics port and Service port are in place",
    ),
    "HTTPRoute": (
        "HTTPRouteUnavailable",
        "spec.httpRoute is set but the cluster has no gateway.networking.k8s.io/v1 HTTPRoute "
        "kind (install the Gateway API CRDs); the Service is in place",
    ),
}


@dataclass(frozen=True)
class Child:
    """One desired child beside what exists under its name."""

    manifest: dict[str, Any]
    observed: dict[str, Any] | None
    ownership: Ownership | None  # None: nothing exists under that name

    @property
    def key(self) -> tuple[str, str, str]:
        meta = self.manifest["metadata"]
        return self.manifest["kind"], meta["namespace"], meta["name"]

    @property
    def in_sync(self) -> bool:
        if self.observed is None or self.ownership != "ours":
            return False
        annotations = self.observed["metadata"].get("annotations") or {}
        wanted = self.manifest["metadata"]["annotations"][APPLIED_HASH_ANNOTATION]
        return annotations.get(APPLIED_HASH_ANNOTATION) == wanted and is_subset(
            self.manifest, self.observed
        )


def _rollout_note(child: Child) -> str:
    """Why applying this Deployment replaces pods, when the user caused it without a spec
    change: the referenced configuration, or a restart asked for."""
    if child.observed is None:
        return ""
    old_hash = pod_annotation(child.observed, CONFIG_HASH_ANNOTATION)
    if old_hash not in (None, pod_annotation(child.manifest, CONFIG_HASH_ANNOTATION)):
        CONFIG_ROLLOUTS.inc()
        return " (referenced configuration changed: rolling restart)"
    restart = pod_annotation(child.manifest, RESTARTED_AT_ANNOTATION)
    if restart not in (None, pod_annotation(child.observed, RESTARTED_AT_ANNOTATION)):
        return f" (restart requested at {restart}: rolling restart)"
    return ""


# An object's resourceVersion is the etcd revision that last wrote it, and a write makes the
# revision at least 2: no object has this one. Server-side apply takes a resourceVersion in the
# body as a precondition on an existing object (409 Conflict when it differs, nothing changed)
# and ignores it when the apply creates the object: an apply that only creates, owned by the
# operator's field manager with operation Apply as any first apply (a POST would own the fields
# with operation Update, and a later apply could then never remove one).
CREATE_ONLY = "1"


# The children the operator may delete (it prunes them), in the order a new cluster's first
# try makes its children before the Service and, last, the Deployment.
UNDOABLE = OPTIONAL_KINDS
CLAIM_ORDER = (*UNDOABLE, "Service")


class ChildExists(Exception):
    """A name assumed free was taken: the pass starts over asking the API."""


def create_only(manifest: dict[str, Any]) -> dict[str, Any]:
    meta = {**manifest["metadata"], "resourceVersion": CREATE_ONLY}
    return {**manifest, "metadata": meta}


def refusal(manifest: dict[str, Any], err: ApiError) -> Blocker:
    kind, name = manifest["kind"], manifest["metadata"]["name"]
    return Blocker(
        "ApplyFailed",
        f"the API server refused {kind} {name} ({err.status} {err.reason}): {err.message}",
        "refused",
    )


# The API server answers an apply whose content does not fit the type's schema (an unknown
# field, a duplicate list key) with a 500 carrying this text: a refusal, not an outage.
TYPED_PATCH_FAILURE = "failed to create typed patch object"


def is_refusal(err: ApiError) -> bool:
    """An answer that retrying the same request cannot cure (not throttling, not a lost
    race, not an outage)."""
    if err.status == 500 and TYPED_PATCH_FAILURE in err.message:
        return True
    transient = err.status in (404, 409, 429) or "being terminated" in err.message
    return 400 <= err.status < 500 and not transient


class ChildApplier:
    def __init__(self, observer: Observer, fights: WriterFights) -> None:
        self.observer = observer
        self.client = observer.client
        self.store = observer.store
        self.fights = fights
        # False once the API server refused a create-only apply for its resourceVersion: then
        # no name is assumed free any more (every miss is read, as before).
        self.creates_only = True

    async def observe(
        self, cluster: AidboxCluster, manifests: list[dict[str, Any]], lookups: Lookups
    ) -> list[Child]:
        children = []
        for manifest in manifests:
            meta = manifest["metadata"]
            body = await self.observer.child(
                manifest["kind"], meta["namespace"], meta["name"], lookups=lookups
            )
            owner = judge(body, cluster.name, cluster.metadata.uid) if body else None
            children.append(Child(manifest, body, owner))
        return children

    async def conflict(self, cluster: AidboxCluster, children: list[Child]) -> Blocker | None:
        foreign = [c for c in children if c.ownership == "foreign" and c.observed]
        if not foreign:
            return None
        kind, namespace, name = foreign[0].key
        # The cache keeps no managedFields: read the object to name who wrote it.
        body = await self.observer.child(kind, namespace, name, cached=False)
        holder = describe_holder(body or foreign[0].observed or {})
        return conflict_blocker(kind, name, holder, cluster.name)

    async def apply_all(
        self,
        children: list[Child],
        result: PassResult,
        lookups: Lookups | None = None,
    ) -> Blocker | None:
        """Apply each child; one whose name `lookups` assumed free is only created."""
        for child in children:
            try:
                await self.apply(child, result, lookups)
            except ApiError as err:
                if child.manifest["kind"] in KIND_MISSING and err.not_found:
                    result.problems.append(KIND_MISSING[child.manifest["kind"]])
                    continue
                if is_refusal(err):
                    return refusal(child.manifest, err)
                raise
        return None

    async def apply(self, child: Child, result: PassResult, lookups: Lookups | None = None) -> None:
        kind, _, name = child.key
        if child.in_sync:
            self.fights.in_sync(child.key)
            if fight := self.fights.fight(child.key):
                # Report the fight as long as it lasts, not only on the passes that repair.
                result.problems.append(("ConflictingWriter", fight_message(kind, name, fight)))
            return
        action = self._action(child)
        if action == "DriftRepaired" and not await self._may_repair(child, result):
            return
        note = _rollout_note(child) if kind == "Deployment" else ""
        if action == "Adopted":
            body = await self._adopt(child)
        elif self.creates_only and lookups is not None and lookups.free(child.key):
            # Known free a moment ago: made so that whatever took it since is left alone.
            body = await self._create(child)
            lookups.record(kind, body)
        else:
            if needs_handover(child.manifest, child.observed):
                assert child.observed is not None
                await hand_over(self.client, child.observed)
            body = await self.client.apply(KINDS_BY_NAME[child.manifest["kind"]], child.manifest)
        self.store.put_child(body)
        result.changes.append((action, f"{kind} {name}{note}"))

    async def _create(self, child: Child) -> dict[str, Any]:
        """Create a child under a name assumed free; ChildExists if anything holds it."""
        try:
            return await self.client.apply(
                KINDS_BY_NAME[child.manifest["kind"]], create_only(child.manifest)
            )
        except ApiError as err:
            if err.conflict:
                raise ChildExists(child.key) from err
            if "resourceVersion" in err.message and err.status in (400, 422, 500):
                # This API server does not take the precondition on creation: read instead.
                self.creates_only = False
                raise ChildExists(child.key) from err
            raise

    async def undo(self, made: list[Made]) -> None:
        """Delete what an abandoned try made, newest first. The uid precondition leaves alone
        an object that someone replaced meanwhile under the same name. Only kinds the
        operator may delete (deploy/base/clusterrole.yaml): the order of a first try's creates
        puts only those before a name it can find taken, but for a race with the keys Secret
        or the Deployment (made a moment after their names were found free)."""
        for item in reversed(made):
            if item.kind not in UNDOABLE:
                continue
            await self.client.delete(KINDS_BY_NAME[item.kind], item.namespace, item.name, item.uid)
            self.store.drop_child(item.kind, item.namespace, item.name)

    async def _adopt(self, child: Child) -> dict[str, Any]:
        """Adoption: the object becomes exactly the manifest. An apply would keep every field
        its previous manager owns (another container, say), so one atomic JSON patch, guarded
        by the resourceVersion we judged, replaces spec, labels, annotations and owners; if the
        API refuses it (an immutable selector) nothing changes. The apply that follows makes
        the operator's field manager own the fields for later passes."""
        kind, namespace, name = child.key
        assert child.observed is not None
        meta = child.manifest["metadata"]
        operations = [
            {
                "op": "test",
                "path": "/metadata/resourceVersion",
                "value": child.observed["metadata"]["resourceVersion"],
            },
            {"op": "replace", "path": "/spec", "value": child.manifest["spec"]},
            *(
                {"op": "add", "path": f"/metadata/{field}", "value": meta[field]}
                for field in ("labels", "annotations", "ownerReferences")
            ),
        ]
        await self.client.request(
            "PATCH",
            KINDS_BY_NAME[kind].path(namespace, name),
            query={"fieldManager": FIELD_MANAGER},
            body=operations,
            content_type=JSON_PATCH,
            verb="patch",
        )
        return await self.client.apply(KINDS_BY_NAME[child.manifest["kind"]], child.manifest)

    def _action(self, child: Child) -> str:
        kind, namespace, name = child.key
        if child.observed is None:
            if self.store.seen_before(kind, namespace, name):
                DRIFT_REPAIRS.labels(kind=kind).inc()
                return "Recreated"
            return "Created"
        if child.ownership == "adoptable":
            return "Adopted"
        observed_hash = (child.observed["metadata"].get("annotations") or {}).get(
            APPLIED_HASH_ANNOTATION
        )
        if observed_hash != child.manifest["metadata"]["annotations"][APPLIED_HASH_ANNOTATION]:
            return "Updated"
        DRIFT_REPAIRS.labels(kind=kind).inc()
        return "DriftRepaired"

    async def _may_repair(self, child: Child, result: PassResult) -> bool:
        """False while a fight with another writer slows repairs down."""
        kind, namespace, name = child.key
        fight = self.fights.fight(child.key)
        if fight is None:
            if not self.fights.repaired(child.key):
                return True  # an ordinary repair
            # Name the other writer: managedFields are not cached, so read them once.
            body = await self.client.get(KINDS_BY_NAME[kind], namespace, name)
            fight = self.fights.start(child.key, last_other_writer(body or {}))
            allowed = True
        else:
            allowed = self.fights.wait_left(child.key) <= 0
            if allowed:
                self.fights.repaired(child.key)
        result.problems.append(("ConflictingWriter", fight_message(kind, name, fight)))
        result.look_again(max(1.0, self.fights.wait_left(child.key)))
        return allowed

    async def prune(
        self, cluster: AidboxCluster, manifests: list[dict[str, Any]], result: PassResult
    ) -> None:
        """Delete children the spec no longer wants (a PDB once replicas drop below 2)."""
        wanted = {m["kind"] for m in manifests}
        ns, name = cluster.namespace, cluster.name
        for kind in OPTIONAL_CHILDREN:
            # Every such kind is watched: the store knows whether one exists.
            body = self.store.child(kind.kind, ns, name)
            if kind.kind in wanted or body is None:
                continue
            if judge(body, cluster.name, cluster.metadata.uid) != "ours":
                continue
            await self.client.delete(kind, ns, name)
            self.store.drop_child(kind.kind, ns, name)
            result.changes.append(("Deleted", f"{kind.kind} {name}"))
