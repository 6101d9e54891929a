"""Reads for a pass: the store first, the API only on a cache miss."""

from __future__ import annotations

from typing import Any

from aidbox_operator.model import AidboxCluster
from aidbox_operator.model.constants import MANAGED_BY, MANAGED_BY_LABEL
from aidbox_operator.reconcile.kinds import KINDS_BY_NAME
from aidbox_operator.reconcile.store import ChildKey, ConfigSummary, ObjectStore
from aidbox_operator.render.secrets import auth_keys_secret_name
from aidbox_operator.runtime.client import KubeClient

Configs = dict[ChildKey, ConfigSummary]
# What one pass read of names the cache does not hold (None: nothing there).
Lookups = dict[ChildKey, dict[str, Any] | None]


def references(cluster: AidboxCluster) -> dict[ChildKey, bool]:
    """Referenced ConfigMap/Secret (plus the generated keys Secret) -> required?"""
    spec, ns = cluster.spec, cluster.namespace
    refs: dict[ChildKey, bool] = {
        ("ConfigMap", ns, spec.config_map_name(cluster.name)): not spec.config_map_ref.optional,
        ("Secret", ns, spec.secret_name(cluster.name)): not spec.secret_ref.optional,
    }
    if spec.auth_keys.generate:
        refs.setdefault(("Secret", ns, auth_keys_secret_name(cluster)), False)
    return refs


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

    async def configs(self, cluster: AidboxCluster) -> tuple[Configs, list[str]]:
        """Summaries of every referenced object, and the required ones that are missing."""
        refs = references(cluster)
        self.store.set_references((cluster.namespace, cluster.name), set(refs))
        configs = {ref: await self.config(ref) for ref in refs}
        missing = [
            f"{kind}/{name}"
            for (kind, _, name), required in refs.items()
            if required and not configs[(kind, cluster.namespace, name)].exists
        ]
        return configs, missing

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
        with the operator's labels, so a miss is asked of the API: an object someone else made
        since the last look produces no watch event here. `lookups` remembers such answers for
        the rest of one pass, so a pass asks once per name."""
        if cached and (body := self.store.child(kind, namespace, name)) is not None:
            return body
        key = (kind, namespace, name)
        if cached and lookups is not None and key in lookups:
            return lookups[key]
        body = await self.client.get(KINDS_BY_NAME[kind], namespace, name)
        if lookups is not None:
            lookups[key] = body
        if body is None:
            return None
        body.setdefault("kind", kind)
        labels = body["metadata"].get("labels") or {}
        if labels.get(MANAGED_BY_LABEL) == MANAGED_BY:
            # Watched: later events keep it current. Anything else is read again each time.
            self.store.put_child(body)
        return body
