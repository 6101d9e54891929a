"""What the operator has seen of the cluster, fed by watch events (an informer cache).

Reconciles read from here instead of the API; a miss falls back to one GET. ConfigMap and
Secret contents are never kept: only a digest, the key names and the owners' uids.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from aidbox_operator.model.constants import INSTANCE_LABEL, MANAGED_BY, MANAGED_BY_LABEL
from aidbox_operator.reconcile.kinds import CHILD_KINDS
from aidbox_operator.render import stable_hash
from aidbox_operator.runtime.cache import ObjectCache
from aidbox_operator.runtime.versions import is_older, resource_version
from aidbox_operator.status import PodSummary, summarize_pod

Key = tuple[str, str]  # (namespace, name)
ChildKey = tuple[str, str, str]  # (kind, namespace, name)


@dataclass(frozen=True)
class ConfigSummary:
    """A referenced ConfigMap or Secret: whether it exists, a digest of its data, its keys."""

    exists: bool
    digest: str = ""
    keys: frozenset[str] = frozenset()
    # uids in its ownerReferences: the generated keys Secret must be this cluster's own.
    owner_uids: frozenset[str] = frozenset()
    # Of the object read (or of its deletion): orders reads racing with watch events where
    # the API allows versions to be ordered (runtime/versions.py).
    resource_version: str = field(default="", compare=False)


def summarize_config(body: dict[str, Any] | None, deleted_at: str = "") -> ConfigSummary:
    if body is None:
        return ConfigSummary(exists=False, resource_version=deleted_at)
    data = {**(body.get("data") or {}), **(body.get("binaryData") or {})}
    refs = (body.get("metadata") or {}).get("ownerReferences") or []
    return ConfigSummary(
        exists=True,
        digest=stable_hash(data),
        keys=frozenset(data),
        owner_uids=frozenset(str(r.get("uid")) for r in refs),
        resource_version=resource_version(body),
    )


def owner_key(body: dict[str, Any]) -> Key | None:
    """The AidboxCluster a child belongs to, from the labels the operator puts on it."""
    meta = body.get("metadata") or {}
    labels = meta.get("labels") or {}
    if labels.get(MANAGED_BY_LABEL) != MANAGED_BY or INSTANCE_LABEL not in labels:
        return None
    return (str(meta.get("namespace", "")), str(labels[INSTANCE_LABEL]))


class ObjectStore:
    def __init__(self) -> None:
        self._clusters: ObjectCache[Key] = ObjectCache()
        self._children: ObjectCache[ChildKey] = ObjectCache()
        self.pods: dict[Key, dict[str, PodSummary]] = defaultdict(dict)
        # Every ConfigMap and Secret seen, as existence + digest + key names (never contents).
        self.configs: dict[ChildKey, ConfigSummary] = {}
        # (kind, namespace, name) of a ConfigMap/Secret -> clusters that reference it.
        self.references: dict[ChildKey, set[Key]] = defaultdict(set)
        self._refs_of: dict[Key, set[ChildKey]] = {}
        # Children that existed at some point while this process watched.
        self._seen: set[ChildKey] = set()

    # -- AidboxClusters --------------------------------------------------------------
    def put_cluster(self, body: dict[str, Any]) -> Key:
        meta = body["metadata"]
        key = (meta["namespace"], meta["name"])
        self._clusters.put(key, body)
        return key

    def cluster(self, key: Key) -> dict[str, Any] | None:
        return self._clusters.get(key)

    def has_cluster(self, key: Key) -> bool:
        return key in self._clusters

    def cluster_keys(self) -> list[Key]:
        return list(self._clusters)

    def drop_cluster(self, key: Key) -> None:
        self._clusters.drop(key)
        self.pods.pop(key, None)
        self.set_references(key, set())
        namespace, name = key
        for kind in CHILD_KINDS:
            child = (kind, namespace, name)
            self._children.drop(child)
            self._seen.discard(child)

    # -- children (Deployment, Service, PodDisruptionBudget, ServiceMonitor) ----------------
    def put_child(self, body: dict[str, Any]) -> None:
        meta = body["metadata"]
        key = (body["kind"], meta["namespace"], meta["name"])
        if self._children.put(key, body):
            self._seen.add(key)

    def drop_child(self, kind: str, namespace: str, name: str) -> None:
        self._children.drop((kind, namespace, name))

    def seen_before(self, kind: str, namespace: str, name: str) -> bool:
        return (kind, namespace, name) in self._seen

    def child(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self._children.get((kind, namespace, name))

    def has_child(self, kind: str, namespace: str, name: str) -> bool:
        return (kind, namespace, name) in self._children

    def child_keys(self, kind: str) -> list[ChildKey]:
        return [key for key in self._children if key[0] == kind]

    # -- pods ----------------------------------------------------------------------------
    def put_pod(self, owner: Key, body: dict[str, Any]) -> None:
        summary = summarize_pod(body)
        self.pods[owner][summary.name] = summary

    def drop_pod(self, owner: Key, name: str) -> None:
        self.pods.get(owner, {}).pop(name, None)

    # -- referenced ConfigMaps and Secrets -----------------------------------------------
    def set_references(self, cluster: Key, refs: set[ChildKey]) -> None:
        for ref in self._refs_of.get(cluster, set()) - refs:
            self.references[ref].discard(cluster)
            if not self.references[ref]:
                del self.references[ref]
        for ref in refs:
            self.references[ref].add(cluster)
        if refs:
            self._refs_of[cluster] = refs
        else:
            self._refs_of.pop(cluster, None)

    def is_referenced(self, kind: str, namespace: str, name: str) -> bool:
        return (kind, namespace, name) in self.references

    def put_config(
        self,
        kind: str,
        namespace: str,
        name: str,
        body: dict[str, Any] | None,
        deleted_at: str = "",
    ) -> bool:
        """Record a ConfigMap/Secret (None: it does not exist, as of resourceVersion
        `deleted_at` when known); True when it changed for a cluster that references it."""
        key = (kind, namespace, name)
        summary = summarize_config(body, deleted_at)
        referenced = key in self.references
        if body is None and not referenced:
            self.configs.pop(key, None)  # forget deleted objects nobody points at
            return False
        old = self.configs.get(key)
        if old is not None and is_older(summary.resource_version, old.resource_version):
            # Older than what is recorded: a read answered before a newer watch event.
            return False
        changed = old != summary
        self.configs[key] = summary
        return changed and referenced
