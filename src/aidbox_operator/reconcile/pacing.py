"""Pod-template changes nobody asked for (this operator release renders pods differently from
the last) roll a bounded number of clusters at a time, in name order, each until Ready.

A change counts as the user's own, and is never queued, when the cluster's spec has a
generation not yet applied or its referenced configuration changed; anything else that would
replace pods comes from the operator. While a cluster waits its Deployment is left exactly as
it is (the other children are still kept), and status says it waits and behind whom.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aidbox_operator.model import AidboxCluster, ClusterStatus
from aidbox_operator.model.constants import (
    APPLIED_HASH_ANNOTATION,
    CONFIG_HASH_ANNOTATION,
    OPERATOR_ROLLOUT_ANNOTATION,
    RESTARTED_AT_ANNOTATION,
)
from aidbox_operator.model.windows import opening_moment, seconds_until_open
from aidbox_operator.reconcile.children import Child
from aidbox_operator.reconcile.store import Key, ObjectStore
from aidbox_operator.render.cluster import with_annotation
from aidbox_operator.runtime.diff import is_subset
from aidbox_operator.runtime.pacer import Pacer
from aidbox_operator.status import Rollout
from aidbox_operator.status.upgrade import pod_annotation

# Clusters rolling at once for an operator-initiated change (see README, Fleets).
DEFAULT_OPERATOR_ROLLOUTS = 5


def _template(body: dict[str, Any]) -> dict[str, Any]:
    template: dict[str, Any] = body["spec"]["template"]
    return template


def operator_initiated(cluster: AidboxCluster, previous: ClusterStatus, deployment: Child) -> bool:
    """Whether applying the Deployment would replace pods for a reason that is not the user's."""
    observed = deployment.observed
    if observed is None or deployment.ownership != "ours":
        return False
    if is_subset(_template(deployment.manifest), _template(observed)):
        return False  # no pod is replaced
    if _annotation(observed, APPLIED_HASH_ANNOTATION) == _annotation(
        deployment.manifest, APPLIED_HASH_ANNOTATION
    ):
        return False  # the same rendering as last applied: drift to repair at once
    for key in (CONFIG_HASH_ANNOTATION, RESTARTED_AT_ANNOTATION):
        # The referenced configuration changed, or a restart was asked for: the user's.
        if pod_annotation(observed, key) != pod_annotation(deployment.manifest, key):
            return False
    if cluster.spec.channel and _image(observed) != _image(deployment.manifest):
        return False  # the channel moves it: its waves pace it
    if previous.template_generation is not None:
        # Applied for this very spec: the new template is this operator's own doing. A spec
        # change the API server refused never reached the Deployment, so it stays the user's.
        return previous.template_generation == cluster.metadata.generation
    # Status from an operator that did not record it: judge by the rest of status.
    stalled = previous.condition("Stalled")
    refused = stalled is not None and stalled.status == "True"
    return cluster.metadata.generation == previous.observed_generation and not refused


def _annotation(body: dict[str, Any], key: str) -> str | None:
    value = (body["metadata"].get("annotations") or {}).get(key)
    return None if value is None else str(value)


def _image(body: dict[str, Any]) -> Any:
    return (_template(body)["spec"].get("containers") or [{}])[0].get("image")


def _rolling(body: dict[str, Any]) -> bool:
    annotations = body["metadata"].get("annotations") or {}
    return annotations.get(OPERATOR_ROLLOUT_ANNOTATION) == "true"


class RolloutPacing:
    def __init__(self, pacer: Pacer[Key], store: ObjectStore) -> None:
        self.pacer = pacer
        self.store = store
        self._recovered = False
        # Until every known cluster has had a pass, the line is forming: a fresh operator
        # grants its first slots in name order, whatever order the first passes finish in.
        self._passed: set[Key] = set()
        pacer.close()

    def passed(self, key: Key) -> None:
        """One pass of `key` is over."""
        if self.pacer.opened:
            return
        self._passed.add(key)
        if len(self._passed) >= self.store.cluster_count():
            self._passed.clear()
            self.pacer.open()

    def _recover(self) -> None:
        """After a restart: rollouts under way (their Deployments say so) hold their slots
        before any waiting cluster is let in."""
        if self._recovered:
            return
        self._recovered = True
        for kind, namespace, name in self.store.child_keys("Deployment"):
            body = self.store.child(kind, namespace, name)
            if body is not None and _rolling(body) and not _done(body):
                self.pacer.hold((namespace, name))

    def gate(
        self,
        cluster: AidboxCluster,
        previous: ClusterStatus,
        children: list[Child],
        now: datetime,
    ) -> tuple[list[Child], tuple[str, str] | None, float | None]:
        """The children to apply now, why the Deployment waits (None when it does not), and
        when to look again (None: an event will say)."""
        key = (cluster.namespace, cluster.name)
        deployment = children[0]
        if self.pacer.limit <= 0 or deployment.observed is None:
            return children, None, None
        self._recover()
        if self.pacer.holds(key):
            if _done(deployment.observed) and not _changes(deployment):
                self.pacer.release(key)  # this apply drops the annotation
                return children, None, None
            return [_marked(deployment), *children[1:]], None, None
        if not operator_initiated(cluster, previous, deployment):
            self.pacer.withdraw(key)
            return children, None, None
        closed = seconds_until_open(cluster.spec.maintenance_windows, now)
        if closed > 0:
            self.pacer.withdraw(key)
            text = (
                "this operator release renders the pods differently; the change waits for the "
                f"cluster's maintenance window (opens {opening_moment(now, closed)}); the pods "
                "keep running"
            )
            return children[1:], ("RolloutQueued", text), closed
        place = self.pacer.admit(key)
        if place == 0:
            return [_marked(deployment), *children[1:]], None, None
        return children[1:], ("RolloutQueued", self._queued_message()), None

    def _queued_message(self) -> str:
        # Stable while it waits: a place in line in the message would change with every slot
        # freed and cost the whole line a status write each time (measured: 10 per cluster).
        return (
            "this operator release renders the pods differently; the change waits for one of "
            f"{self.pacer.limit} rollout slots (clusters take them in namespace/name order, each "
            "until Ready); the pods keep running as they are"
        )


def _changes(deployment: Child) -> bool:
    assert deployment.observed is not None
    return not is_subset(_template(deployment.manifest), _template(deployment.observed))


def _done(body: dict[str, Any]) -> bool:
    replicas = int(body.get("spec", {}).get("replicas") or 0)
    rollout = Rollout.of(body, replicas)
    return rollout.complete and rollout.ready >= replicas


def _marked(deployment: Child) -> Child:
    manifest = with_annotation(deployment.manifest, OPERATOR_ROLLOUT_ANNOTATION, "true")
    return Child(manifest, deployment.observed, deployment.ownership)
