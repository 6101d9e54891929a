"""Reads for a pass: the store first, the API only on a cache miss."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aidbox_operator.model import AidboxCluster
from aidbox_operator.model.constants import MANAGED_BY, MANAGED_BY_LABEL
from aidbox_operator.reconcile.kinds import KINDS_BY_NAME, OPTIONAL_KINDS
from aidbox_operator.reconcile.store import ChildKey, ConfigSummary, ObjectStore
from aidbox_operator.render.backing import backing_keys
from aidbox_operator.render.secrets import auth_keys_secret_name
from aidbox_operator.runtime.client import KubeClient

Configs = dict[ChildKey, ConfigSummary]


# Names a new cluster's first try does not read. Not the Deployment's: it starts pods, so its
# name is always read and nothing is made beside a foreign Deployment; the others are made
# before it, the Service last of them (see ClusterReconciler._claim).
ASSUMABLE = ("Service", *OPTIONAL_KINDS, "Secret")


@dataclass(frozen=True)
class Made:
    """An object one try created: deleted again, by its uid, if the try is abandoned."""

    kind: str
    namespace: str
    name: str
    uid: str


@dataclass
class Lookups:
    """One pass's answers for names the cache does not hold (None: nothing there).

    With `assume_absent` (a cluster no pass has reported on yet) a miss is not asked of the
    API: the name counts as free and goes into `assumed`, and whatever the pass then makes
    under it is made with a request that fails, changing nothing, if anything exists there
    (children.CREATE_ONLY, the keys Secret's POST). Such a failure ends the try; the pass
    runs again asking the API, as every later pass does, after deleting what the try made
    (`made`, by uid), so that a taken name leaves the namespace as a read would have."""

    assume_absent: bool = False
    answers: dict[ChildKey, dict[str, Any] | None] = field(default_factory=dict)
    assumed: set[ChildKey] = field(default_factory=set)
    made: list[Made] = field(default_factory=list)

    def record(self, kind: str, body: dict[str, Any]) -> None:
        """An object this try made under a name it assumed free."""
        meta = body["metadata"]
        key = (kind, str(meta["namespace"]), str(meta["name"]))
        if key in self.assumed:
            self.made.append(Made(kind, key[1], key[2], str(meta["uid"])))

    def assume(self, key: ChildKey) -> bool:
        """True (and `key` recorded as assumed free) when this try may skip the read."""
        if self.assume_absent and key[0] in ASSUMABLE:
            self.assumed.add(key)
            self.answers[key] = None
            return True
        return False

    def free(self, key: ChildKey) -> bool:
        """Whether this pass assumed or read that nothing holds the name."""
        return key in self.answers and self.answers[key] is None


def env_sources(cluster: AidboxCluster) -> list[tuple[ChildKey, bool]]:
    """The user's ConfigMaps/Secrets the Aidbox container's envFrom names, in its order, each
    with whether it is required."""
    spec, ns = cluster.spec, cluster.namespace
    sources: list[tuple[ChildKey, bool]] = [
        (("ConfigMap", ns, spec.config_map_name(cluster.name)), not spec.config_map_ref.optional),
        (("Secret", ns, spec.secret_name(cluster.name)), not spec.secret_ref.optional),
    ]
    for extra in spec.extra_env_from:
        kind, ref = extra.source()
        sources.append(((kind, ns, ref.name), not ref.optional))
    return sources


def envfrom_keys(cluster: AidboxCluster, configs: Configs) -> frozenset[str]:
    """Variable names the user's envFrom sources set (the generated keys Secret's are not
    the user's)."""
    keys: set[str] = set()
    for ref, _ in env_sources(cluster):
        keys |= configs[ref].keys
    return frozenset(keys)


def references(cluster: AidboxCluster) -> dict[ChildKey, bool]:
    """Referenced ConfigMaps/Secrets (plus the generated keys Secret) -> required? Their data
    goes into the pods' config hash, so a change of any of them rolls the pods."""
    spec, ns = cluster.spec, cluster.namespace
    refs: dict[ChildKey, bool] = {}
    for ref, required in env_sources(cluster):
        # Named twice (as secretRef and in extraEnvFrom): required if either use requires it.
        refs[ref] = refs.get(ref, False) or required
    for key in backing_keys(cluster):  # read one key at a time: the object must exist
        refs[(key.kind, ns, key.name)] = True
    if spec.auth_keys.generate:
        refs.setdefault(("Secret", ns, auth_keys_secret_name(cluster)), False)
    return refs


def missing_keys(cluster: AidboxCluster, configs: Configs) -> list[str]:
    """Keys the pods read one by one (secretKeyRef, a mounted file) that their existing
    object lacks: the pods could not start (CreateContainerConfigError)."""
    ns, missing = cluster.namespace, []
    for ref in backing_keys(cluster):
        summary = configs.get((ref.kind, ns, ref.name))
        if summary is not None and summary.exists and ref.key not in summary.keys:
            missing.append(f"key {ref.key} of {ref.kind}/{ref.name}")
    return missing


class Observer:
    def __init__(self, client: KubeClient, store: ObjectStore) -> None:
        self.client = client
        self.store = store

    async def config(self, ref: ChildKey) -> ConfigSummary:
        cached = self.store.configs.get(ref)
        if cached is not None:
            return cached
        kind, namespace, name = ref
        body = await self.client.get(KINDS_BY_NAME[kind], namespace, name)
        self.store.put_config(kind, namespace, name, body)
        return self.store.configs.get(ref) or ConfigSummary(exists=False)

    async def configs(
        self, cluster: AidboxCluster, lookups: Lookups | None = None
    ) -> tuple[Configs, list[str]]:
        """Summaries of every referenced object, and the required ones that are missing. The
        generated keys Secret is created with a POST (409 when anything holds the name): a try
        that assumes names free does not read it while the Secret watch has not seen it."""
        refs = references(cluster)
        self.store.set_references((cluster.namespace, cluster.name), set(refs))
        ns, keys = cluster.namespace, auth_keys_secret_name(cluster)
        unseen = ("Secret", ns, keys) not in self.store.configs
        unseen = unseen and (ns, keys) not in self.store.keys_secrets
        configs = {}
        for ref, required in refs.items():
            assumed = unseen and ref == ("Secret", ns, keys) and not required
            if assumed and lookups is not None and lookups.assume(ref):
                configs[ref] = ConfigSummary(exists=False)
            else:
                configs[ref] = await self.config(ref)
        missing = [
            f"{kind}/{name}"
            for (kind, _, name), required in refs.items()
            if required and not configs[(kind, cluster.namespace, name)].exists
        ]
        return configs, missing + missing_keys(cluster, configs)

    async def child(
        self,
        kind: str,
        namespace: str,
        name: str,
        *,
        cached: bool = True,
        lookups: Lookups | None = None,
    ) -> dict[str, Any] | None:
        """The object of that kind and name, whoever owns it. The cache holds only objects
        with the operator's labels, so a miss is asked of the API (unless `lookups` assumes
        names free): an object someone else made since the last look produces no watch event
        here. `lookups` remembers such answers for the rest of one pass, so a pass asks once
        per name."""
        if cached and (body := self.store.child(kind, namespace, name)) is not None:
            return body
        key = (kind, namespace, name)
        if cached and lookups is not None:
            if key in lookups.answers:
                return lookups.answers[key]
            if lookups.assume(key):
                return None
        body = await self.client.get(KINDS_BY_NAME[kind], namespace, name)
        if lookups is not None:
            lookups.answers[key] = body
        if body is None:
            return None
        body.setdefault("kind", kind)
        labels = body["metadata"].get("labels") or {}
        if labels.get(MANAGED_BY_LABEL) == MANAGED_BY:
            # Watched: later events keep it current. Anything else is read again each time.
            self.store.put_child(body)
        return body
