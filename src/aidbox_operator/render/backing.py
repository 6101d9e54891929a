"""The pods' wiring to what Aidbox depends on: its database, license and init bundle. Values
that belong in a Secret are referenced by key (secretKeyRef), never copied."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aidbox_operator.model import AidboxCluster
from aidbox_operator.model.backing import POSTGRES_PORT, DatabaseSpec
from aidbox_operator.model.constants import INIT_BUNDLE_VOLUME

INIT_BUNDLE_DIR = "/aidbox-init"
# CloudNativePG's application Secret and Services for a Cluster named N.
CNPG_APP_SECRET = "{}-app"
CNPG_RW_SERVICE = "{}-rw"
CNPG_RO_SERVICE = "{}-ro"
CNPG_KEYS = {"DATABASE": "dbname", "USER": "username", "PASSWORD": "password"}
REPLICA = "BOX_DB_RO_REPLICA"
REPLICA_SWITCH = "BOX_DB_RO_REPLICA_ENABLED"


@dataclass(frozen=True)
class KeyRef:
    """One key of a ConfigMap or Secret the pods need: it must exist before they start."""

    kind: str
    name: str
    key: str


def _value(name: str, value: str) -> dict[str, Any]:
    return {"name": name, "value": value}


def _secret(name: str, secret: str, key: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def _connection(prefix: str, host: str, port: int) -> list[dict[str, Any]]:
    return [_value(f"{prefix}_HOST", host), _value(f"{prefix}_PORT", str(port))]


def _cnpg_env(name: str, read_replica: bool) -> list[dict[str, Any]]:
    secret = CNPG_APP_SECRET.format(name)

    def wired(prefix: str, service: str) -> list[dict[str, Any]]:
        keys = [_secret(f"{prefix}_{var}", secret, key) for var, key in CNPG_KEYS.items()]
        return [*_connection(prefix, service.format(name), POSTGRES_PORT), *keys]

    env = wired("BOX_DB", CNPG_RW_SERVICE)
    if read_replica:
        env += [_value(REPLICA_SWITCH, "true"), *wired(REPLICA, CNPG_RO_SERVICE)]
    return env


def _database_env(db: DatabaseSpec) -> list[dict[str, Any]]:
    if db.cloud_native_pg is not None:
        return _cnpg_env(db.cloud_native_pg.name, db.cloud_native_pg.read_replica)
    assert db.host is not None

    def wired(prefix: str, host: str, port: int) -> list[dict[str, Any]]:
        # The replica holds the primary's data: the same database name and credentials.
        env = _connection(prefix, host, port)
        if db.name:
            env.append(_value(f"{prefix}_DATABASE", db.name))
        if creds := db.credentials:
            env.append(_secret(f"{prefix}_USER", creds.secret_name, creds.username_key))
            env.append(_secret(f"{prefix}_PASSWORD", creds.secret_name, creds.password_key))
        return env

    env = wired("BOX_DB", db.host, db.port)
    if replica := db.read_replica:
        env += [_value(REPLICA_SWITCH, "true"), *wired(REPLICA, replica.host, replica.port)]
    return env


def backing_env(cluster: AidboxCluster) -> list[dict[str, Any]]:
    spec = cluster.spec
    env = _database_env(spec.database) if spec.database else []
    if spec.license:
        env.append(_secret("BOX_LICENSE", spec.license.name, spec.license.key))
    if spec.init_bundle:
        env.append(_value("BOX_INIT_BUNDLE", f"file://{INIT_BUNDLE_DIR}/{spec.init_bundle.key}"))
    return env


def backing_volumes(cluster: AidboxCluster) -> list[dict[str, Any]]:
    bundle = cluster.spec.init_bundle
    if bundle is None:
        return []
    items = [{"key": bundle.key, "path": bundle.key}]
    source = {"name": bundle.config_map_name, "items": items}
    return [{"name": INIT_BUNDLE_VOLUME, "configMap": source}]


def backing_mounts(cluster: AidboxCluster) -> list[dict[str, Any]]:
    if cluster.spec.init_bundle is None:
        return []
    return [{"name": INIT_BUNDLE_VOLUME, "mountPath": INIT_BUNDLE_DIR, "readOnly": True}]


def backing_keys(cluster: AidboxCluster) -> list[KeyRef]:
    """Every ConfigMap/Secret key the wiring above reads: a missing one would keep the pods
    from starting (CreateContainerConfigError), so a rollout waits for it."""
    spec, keys = cluster.spec, []
    if db := spec.database:
        if db.cloud_native_pg is not None:
            secret = CNPG_APP_SECRET.format(db.cloud_native_pg.name)
            keys += [KeyRef("Secret", secret, key) for key in CNPG_KEYS.values()]
        elif creds := db.credentials:
            keys += [
                KeyRef("Secret", creds.secret_name, key)
                for key in (creds.username_key, creds.password_key)
            ]
    if spec.license:
        keys.append(KeyRef("Secret", spec.license.name, spec.license.key))
    if spec.init_bundle:
        keys.append(KeyRef("ConfigMap", spec.init_bundle.config_map_name, spec.init_bundle.key))
    return keys
