"""What the operator has seen of the cluster, fed by watch events (an informer cache).

Reconciles read from here instead of the API; a miss falls back to one GET. ConfigMap and
Secret contents are never kept: only a digest, the key names and the owners' uids.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from aidbox_operator.model.constants import (
    AUTH_KEYS_SUFFIX,
    INSTANCE_LABEL,
    MANAGED_BY,
    MANAGED_BY_LABEL,
)
from aidbox_operator.reconcile.kinds import CHILD_KINDS
from aidbox_operator.render import stable_hash
from aidbox_operator.runtime.cache import ObjectCache
from aidbox_operator.runtime.versions import is_older, resource_version
from aidbox_operator.status import PodSummary, summarize_pod

Key = tuple[str, str]  # (namespace, name)
ChildKey = tuple[str, str, str]  # (kind, namespace, name)


# Kept for every referenced ConfigMap and Secret (slots: no per-instance dict).
@dataclass(frozen=True, slots=True)
class ConfigSummary:
    """A referenced ConfigMap or Secret: whether it exists, a digest of its data, its keys."""

    exists: bool
    digest: str = ""
    keys: frozenset[str] = frozenset()
    # uids in its ownerReferences: the generated keys Secret must be this cluster's own.
    # Sorted; a tuple, as there is rarely more than one (a frozenset takes 216 bytes).
    owner_uids: tuple[str, ...] = ()
    # Of the object read (or of its deletion): orders reads racing with watch events where
    # the API allows versions to be ordered (runtime/versions.py).
    resource_version: str = field(default="", compare=False)


def summarize_config(
    body: dict[str, Any] | None,
    deleted_at: str = "",
    share: Callable[[frozenset[str]], frozenset[str]] = lambda keys: keys,
) -> ConfigSummary:
    """`share` may hand back an equal set already kept (objects of many clusters often have
    the same key names)."""
    if body is None:
        return ConfigSummary(exists=False, resource_version=deleted_at)
    data = {**(body.get("data") or {}), **(body.get("binaryData") or {})}
    refs = (body.get("metadata") or {}).get("ownerReferences") or []
    return ConfigSummary(
        exists=True,
        digest=stable_hash(data),
        keys=share(frozenset(data)),
        owner_uids=tuple(sorted({str(r.get("uid")) for r in refs})),
        resource_version=resource_version(body),
    )


def owner_key(body: dict[str, Any]) -> Key | None:
    """The AidboxCluster a child belongs to, from the labels the operator puts on it."""
    meta = body.get("metadata") or {}
    labels = meta.get("labels") or {}
    if labels.get(MANAGED_BY_LABEL) != MANAGED_BY or INSTANCE_LABEL not in labels:
        return None
    return (str(meta.get("namespace", "")), str(labels[INSTANCE_LABEL]))


class Names:
    """One str object per distinct namespace, name and kind in the store's keys. Every watch
    event, GET and pass brings its own copies, ~54 bytes each: a cluster's keys held ~18 of
    them (measured with tracemalloc on the sandbox)."""

    def __init__(self) -> None:
        self._table: dict[str, str] = {}
        self._dropped = 0

    def __call__(self, value: str) -> str:
        return self._table.setdefault(value, value)

    def key(self, namespace: str, name: str) -> Key:
        return self(namespace), self(name)

    def child_key(self, kind: str, namespace: str, name: str) -> ChildKey:
        return self(kind), self(namespace), self(name)

    def dropped(self, kept: int, live: Callable[[], Iterable[str]]) -> None:
        """A cluster went away. After as many deletions as there are clusters kept, the names
        no key uses any more are forgotten (what is live is listed then, not counted always)."""
        self._dropped += 1
        if self._dropped > kept + 64:
            self._table = {name: name for name in live()}
            self._dropped = 0


class ObjectStore:
    def __init__(self) -> None:
        self._names = Names()
        self._clusters: ObjectCache[Key] = ObjectCache()
        self._children: ObjectCache[ChildKey] = ObjectCache()
        self.pods: dict[Key, dict[str, PodSummary]] = defaultdict(dict)
        # Every ConfigMap and Secret seen, as existence + digest + key names (never contents).
        self.configs: dict[ChildKey, ConfigSummary] = {}
        # (kind, namespace, name) of a ConfigMap/Secret -> clusters that reference it. Tuples,
        # not sets: it is nearly always one, and a set takes 216 bytes however few it holds.
        self.references: dict[ChildKey, tuple[Key, ...]] = {}
        self._refs_of: dict[Key, tuple[ChildKey, ...]] = {}
        # One frozenset per distinct set of key names in `configs` (see _share_keys).
        self._key_sets: dict[frozenset[str], frozenset[str]] = {}
        # Children that existed at some point while this process watched.
        self._seen: set[ChildKey] = set()
        # AidboxReleaseChannels (cluster-scoped) by name, and which clusters name each.
        # Newest version wins: a watch event older than the status a pass just wrote must not
        # take it back (clusters would see an old admission list and flip their image).
        self._channels: ObjectCache[str] = ObjectCache()
        self._channel_of: dict[Key, str] = {}
        # (namespace, name) of every Secret named like a keys Secret (`*-auth-keys`) that the
        # Secret watch (metadata only, every Secret in scope) says exists.
        self.keys_secrets: set[Key] = set()

    # -- AidboxClusters --------------------------------------------------------------
    def put_cluster(self, body: dict[str, Any]) -> Key:
        """Its key, made of the names the store keeps (queue it, not a copy of its own)."""
        meta = body["metadata"]
        key = self._names.key(meta["namespace"], meta["name"])
        self._clusters.put(key, body)
        channel = (body.get("spec") or {}).get("channel")
        if channel:
            self._channel_of[key] = self._names(str(channel))
        else:
            self._channel_of.pop(key, None)
        return key

    def channel_of(self, key: Key) -> str | None:
        return self._channel_of.get(key)

    def cluster(self, key: Key) -> dict[str, Any] | None:
        return self._clusters.get(key)

    def has_cluster(self, key: Key) -> bool:
        return key in self._clusters

    def cluster_count(self) -> int:
        return len(self._clusters)

    def cluster_keys(self) -> list[Key]:
        return list(self._clusters)

    def drop_cluster(self, key: Key) -> None:
        self._clusters.drop(key)
        self._channel_of.pop(key, None)
        self.set_references(key, set())
        # Its children and pods stay cached as long as they exist: their own watch events
        # remove them. After `kubectl delete --cascade=orphan` they outlive the cluster, and a
        # cluster made again under the name adopts them; its pods, unchanged, send no event
        # that would bring them back into the cache.
        namespace, name = key
        for kind in CHILD_KINDS:
            self._seen.discard((kind, namespace, name))
        self._names.dropped(len(self._clusters), self._live_names)

    def _live_names(self) -> Iterator[str]:
        # Values of `references` and `_refs_of` are keys of `_refs_of` and `references`.
        for key in (*self._clusters, *self.pods, *self._refs_of):
            yield from key
        for child in (*self._children, *self.configs, *self.references, *self._seen):
            yield from child
        yield from self._channel_of.values()

    # -- children (Deployment, Service, PodDisruptionBudget, ServiceMonitor) ----------------
    def put_child(self, body: dict[str, Any]) -> None:
        meta = body["metadata"]
        key = self._names.child_key(body["kind"], meta["namespace"], meta["name"])
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

    def knows_workload_of(self, cluster: Key) -> bool:
        """Whether any child or pod labelled for this cluster is cached."""
        namespace, name = cluster
        return bool(self.pods.get(cluster)) or any(
            (kind, namespace, name) in self._children for kind in CHILD_KINDS
        )

    def child_keys(self, kind: str) -> list[ChildKey]:
        return [key for key in self._children if key[0] == kind]

    # -- AidboxReleaseChannels -----------------------------------------------------------
    def put_channel(self, body: dict[str, Any]) -> None:
        self._channels.put(body["metadata"]["name"], body)

    def channel(self, name: str) -> dict[str, Any] | None:
        return self._channels.get(name)

    def drop_channel(self, name: str) -> None:
        self._channels.drop(name)

    def channel_names(self) -> list[str]:
        return list(self._channels)

    def channel_members(self, name: str) -> list[Key]:
        return sorted(key for key, channel in self._channel_of.items() if channel == name)

    # -- pods ----------------------------------------------------------------------------
    def put_pod(self, owner: Key, body: dict[str, Any]) -> None:
        summary = summarize_pod(body)
        self.pods[self._names.key(*owner)][summary.name] = summary

    def drop_pod(self, owner: Key, name: str) -> None:
        self.pods.get(owner, {}).pop(name, None)

    # -- referenced ConfigMaps and Secrets -----------------------------------------------
    def set_references(self, cluster: Key, refs: set[ChildKey]) -> None:
        before = set(self._refs_of.get(cluster, ()))
        if before == refs:
            return  # as on the last pass (the usual case): keep what is stored
        for ref in before - refs:
            rest = tuple(c for c in self.references[ref] if c != cluster)
            if rest:
                self.references[ref] = rest
            else:
                del self.references[ref]
        cluster = self._names.key(*cluster)
        kept = tuple(self._names.child_key(*ref) for ref in sorted(refs))
        for ref in kept:
            if ref not in before:
                self.references[ref] = (*self.references.get(ref, ()), cluster)
        if kept:
            self._refs_of[cluster] = kept
        else:
            self._refs_of.pop(cluster, None)

    def saw_secret(self, namespace: str, name: str, exists: bool) -> None:
        """A Secret watch event (or a LIST): keep the names that could be a keys Secret."""
        if not name.endswith(AUTH_KEYS_SUFFIX):
            return
        if exists:
            self.keys_secrets.add((namespace, name))
        else:
            self.keys_secrets.discard((namespace, name))

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
        summary = summarize_config(body, deleted_at, self._share_keys)
        referenced = key in self.references
        if body is None and not referenced:
            self.configs.pop(key, None)  # forget deleted objects nobody points at
            return False
        old = self.configs.get(key)
        if old is not None and is_older(summary.resource_version, old.resource_version):
            # Older than what is recorded: a read answered before a newer watch event.
            return False
        changed = old != summary
        self.configs[self._names.child_key(*key)] = summary
        return changed and referenced

    def _share_keys(self, keys: frozenset[str]) -> frozenset[str]:
        """An equal set of key names already kept, else `keys`: the clusters of a fleet are
        mostly configured alike, and each frozenset takes 216 bytes plus its strings."""
        shared = self._key_sets.setdefault(keys, keys)
        if len(self._key_sets) > 2 * len(self.configs) + 64:
            # Forget the sets no summary holds any more.
            self._key_sets = {c.keys: c.keys for c in self.configs.values()}
        return shared
