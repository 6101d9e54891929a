"""Shared JWT signing keys (and the Multibox cluster secret) for all replicas.

Generated once into `<name>-auth-keys` and changed only on purpose: new keys invalidate every
token users hold. A deleted keys Secret is reported and, unless spec.authKeys.onLoss says
Regenerate, left for a person to restore. Key material never leaves this module except into
that Secret.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from aidbox_operator.model import AidboxCluster, parse_image_version
from aidbox_operator.model.constants import ADOPT_ANNOTATION
from aidbox_operator.reconcile.observe import Configs, envfrom_keys
from aidbox_operator.reconcile.result import PassResult
from aidbox_operator.reconcile.store import ObjectStore
from aidbox_operator.render.labels import common_labels, owner_reference
from aidbox_operator.render.secrets import (
    AUTH_KEYS,
    CLUSTER_SECRET_KEY,
    PRIVATE_KEY,
    PUBLIC_KEY,
    SECRET_KEY,
    auth_keys_secret_name,
    build_keys_secret,
    is_multibox,
)
from aidbox_operator.runtime.client import JSON_PATCH, MERGE_PATCH, ApiError, KubeClient
from aidbox_operator.runtime.kinds import SECRETS
from aidbox_operator.status import Blocker
from aidbox_operator.status.ownership import conflict_blocker, describe_holder, judge


def _generate_values(keys: frozenset[str]) -> dict[str, str]:
    values: dict[str, str] = {}
    if PRIVATE_KEY in keys or PUBLIC_KEY in keys:
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        values[PRIVATE_KEY] = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        values[PUBLIC_KEY] = (
            private.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )
    if SECRET_KEY in keys:
        values[SECRET_KEY] = secrets.token_urlsafe(48)  # 64 characters, well over 32 bytes
    if CLUSTER_SECRET_KEY in keys:
        values[CLUSTER_SECRET_KEY] = secrets.token_urlsafe(48)
    return {k: v for k, v in values.items() if k in keys}


# RSA generation takes ~70-90 ms of CPU: off the event loop, on threads of its own so that it
# never delays the default executor others use.
_KEYGEN = ThreadPoolExecutor(max_workers=2, thread_name_prefix="keygen")


async def generate_key_data(keys: frozenset[str]) -> dict[str, str]:
    """Base64 Secret data for the given keys."""
    loop = asyncio.get_running_loop()
    values = await loop.run_in_executor(_KEYGEN, _generate_values, keys)
    return {k: base64.b64encode(v.encode()).decode() for k, v in values.items()}


@dataclass(frozen=True)
class KeysPlan:
    """What the keys Secret needs this pass (decided without writing anything)."""

    name: str
    # Keys the pods read from the operator's Secret.
    wanted: tuple[str, ...] = ()
    # Keys to generate now; with `create`, the Secret itself is to be made.
    absent: frozenset[str] = frozenset()
    create: bool = False
    # The Secret existed (the Deployment reads it) and is gone; policy allowed new keys.
    regenerate: bool = False
    # The Secret exists but belongs to someone else: a conflict to name.
    foreign: bool = False
    blocker: Blocker | None = None


def _user_keys(cluster: AidboxCluster, configs: Configs) -> set[str]:
    return {e.name for e in cluster.spec.env} | envfrom_keys(cluster, configs)


def _half_set(user_keys: set[str]) -> Blocker | None:
    if (PRIVATE_KEY in user_keys) == (PUBLIC_KEY in user_keys):
        return None
    have, lack = (
        (PRIVATE_KEY, PUBLIC_KEY) if PRIVATE_KEY in user_keys else (PUBLIC_KEY, PRIVATE_KEY)
    )
    return Blocker(
        "AuthKeysIncomplete",
        f"the cluster's configuration sets {have} but not {lack}: Aidbox 2602+ refuses to start "
        "and older releases sign tokens other replicas reject; set both (and "
        f"{SECRET_KEY}) or neither, to let the operator generate a shared set",
        "refused",
    )


def _reads_keys_secret(deployment: dict[str, Any] | None, name: str) -> bool:
    if not deployment:
        return False
    for container in deployment["spec"]["template"]["spec"].get("containers") or []:
        for var in container.get("env") or []:
            ref = (var.get("valueFrom") or {}).get("secretKeyRef") or {}
            if ref.get("name") == name:
                return True
    return False


def _lost_keys(cluster: AidboxCluster, name: str) -> Blocker | None:
    if cluster.spec.auth_keys.on_loss == "Regenerate":
        return None
    return Blocker(
        "AuthKeysMissing",
        f"Secret {name} with the cluster's shared JWT keys was deleted; new keys would "
        "invalidate every token already issued, so nothing is regenerated: restore the Secret "
        "(from a backup), or set spec.authKeys.onLoss: Regenerate to create new keys",
        "refused",
    )


def plan_keys(
    cluster: AidboxCluster, configs: Configs, own_deployment: dict[str, Any] | None
) -> KeysPlan:
    name = auth_keys_secret_name(cluster)
    user_keys = _user_keys(cluster, configs)
    if blocker := _half_set(user_keys):
        return KeysPlan(name, blocker=blocker)
    if not cluster.spec.auth_keys.generate:
        return KeysPlan(name)
    wanted = {k for k in AUTH_KEYS if PRIVATE_KEY not in user_keys}
    if is_multibox(parse_image_version(cluster.spec.image).repository):
        wanted |= {CLUSTER_SECRET_KEY} - user_keys
    ordered = tuple(k for k in (*AUTH_KEYS, CLUSTER_SECRET_KEY) if k in wanted)
    if not wanted:
        return KeysPlan(name)
    existing = configs[("Secret", cluster.namespace, name)]
    if existing.exists and cluster.metadata.uid not in existing.owner_uids:
        return KeysPlan(name, foreign=True)
    if not existing.exists and _reads_keys_secret(own_deployment, name):
        lost = _lost_keys(cluster, name)
        return KeysPlan(name, ordered, frozenset(wanted), True, regenerate=True, blocker=lost)
    absent = frozenset(wanted - existing.keys)
    return KeysPlan(name, ordered, absent, create=not existing.exists)


class KeysKeeper:
    def __init__(self, client: KubeClient, store: ObjectStore) -> None:
        self.client = client
        self.store = store

    async def claim(self, cluster: AidboxCluster, name: str, result: PassResult) -> Blocker | None:
        """A keys Secret that is not this cluster's: adopted when a person handed it over
        (the adopt annotation, as after `kubectl delete --cascade=orphan` of the cluster and
        re-creating it), its keys kept; otherwise the conflict, naming who holds it."""
        body = await self.client.get(SECRETS, cluster.namespace, name)
        if body is None:
            # Deleted since the cache saw it: judge again on a fresh pass rather than report
            # a conflict with an object that is no longer there.
            self.store.put_config("Secret", cluster.namespace, name, None)
            raise KeysRaced(name)
        if judge(body, cluster.name, cluster.metadata.uid) != "adoptable":
            return conflict_blocker("Secret", name, describe_holder(body), cluster.name)
        body = await self._adopt(cluster, body)
        self.store.put_config("Secret", cluster.namespace, name, body)
        result.changes.append(("Adopted", f"Secret {name} (its JWT keys kept)"))
        return None

    async def _adopt(self, cluster: AidboxCluster, body: dict[str, Any]) -> dict[str, Any]:
        """Owner reference and labels added, the adopt annotation removed, the data left as
        it is: new keys would invalidate every token issued. The resourceVersion judged is a
        precondition: a Secret changed meanwhile is judged again on a fresh pass."""
        meta = body["metadata"]
        labels = {**(meta.get("labels") or {}), **common_labels(cluster)}
        operations = [
            {"op": "test", "path": "/metadata/resourceVersion", "value": meta["resourceVersion"]},
            {"op": "add", "path": "/metadata/ownerReferences", "value": [owner_reference(cluster)]},
            {"op": "add", "path": "/metadata/labels", "value": labels},
            {
                "op": "remove",
                "path": "/metadata/annotations/" + ADOPT_ANNOTATION.replace("/", "~1"),
            },
        ]
        ns, name = cluster.namespace, meta["name"]
        try:
            adopted: dict[str, Any] = await self.client.request(
                "PATCH",
                SECRETS.path(ns, name),
                body=operations,
                content_type=JSON_PATCH,
                verb="patch",
            )
        except ApiError as err:
            if err.status not in (409, 422):
                raise
            self.store.put_config("Secret", ns, name, await self.client.get(SECRETS, ns, name))
            raise KeysRaced(name) from err
        return adopted

    async def ensure(self, cluster: AidboxCluster, plan: KeysPlan, result: PassResult) -> None:
        """Create the keys Secret or add its missing keys."""
        if not plan.absent:
            return
        ns, name = cluster.namespace, plan.name
        data = await generate_key_data(plan.absent)
        if plan.create:
            body = await self._create(cluster, data)
            if plan.regenerate:
                result.warnings.append(
                    (
                        "AuthKeysRegenerated",
                        f"Secret {name} was deleted; new JWT keys were generated as "
                        "spec.authKeys.onLoss: Regenerate asks: tokens issued before are invalid",
                    )
                )
            else:
                result.changes.append(("Created", f"Secret {name} with shared JWT keys"))
        else:
            # Add only what is missing: existing keys are never replaced.
            body = await self.client.request(
                "PATCH",
                SECRETS.path(ns, name),
                body={"data": data},
                content_type=MERGE_PATCH,
                verb="patch",
            )
            result.changes.append(("Updated", f"Secret {name}: added {', '.join(sorted(data))}"))
        self.store.put_config("Secret", ns, name, body)

    async def _create(self, cluster: AidboxCluster, data: dict[str, str]) -> dict[str, Any]:
        try:
            return await self.client.create(
                SECRETS, cluster.namespace, build_keys_secret(cluster, data)
            )
        except ApiError as err:
            if not err.conflict:
                raise
        # Made meanwhile, by this operator before a crash or by another writer: read it, so the
        # next pass judges its owner instead of trying to create it again.
        name = auth_keys_secret_name(cluster)
        body = await self.client.get(SECRETS, cluster.namespace, name)
        self.store.put_config("Secret", cluster.namespace, name, body)
        raise KeysRaced(name)


class KeysRaced(Exception):
    """The keys Secret appeared between observing and creating it; the pass starts over."""
