"""What an Aidbox cluster depends on outside its pods: its PostgreSQL database, its license and
its init bundle. Each is wired into the pods' environment from objects the user names."""

from __future__ import annotations

from typing import Annotated

from pydantic import ConfigDict, Field, model_validator

from aidbox_operator.model.base import DataKey, KubeModel, ObjectName, Port

# A DNS name or an IP address.
HostName = Annotated[
    str,
    Field(min_length=1, max_length=253, pattern=r"^[A-Za-z0-9]([-A-Za-z0-9.:]*[A-Za-z0-9])?$"),
]
POSTGRES_PORT = 5432


class SecretKeyRef(KubeModel):
    """One key of a Secret in the cluster's namespace."""

    name: ObjectName = Field(description="Secret name.")
    key: DataKey = Field(description="Key in the Secret.")


class LicenseRef(SecretKeyRef):
    """The Secret key holding the Aidbox license (BOX_LICENSE)."""

    key: DataKey = Field(default="license", description="Key in the Secret.")


class InitBundleRef(KubeModel):
    """A ConfigMap key holding an init bundle, mounted as a file (BOX_INIT_BUNDLE)."""

    config_map_name: ObjectName = Field(description="ConfigMap name.")
    key: DataKey = Field(
        default="init-bundle.json", description="Key in the ConfigMap (the file's name)."
    )


class DatabaseCredentials(KubeModel):
    """The Secret with the database user and password (BOX_DB_USER, BOX_DB_PASSWORD)."""

    secret_name: ObjectName = Field(description="Secret name.")
    username_key: DataKey = Field(default="username", description="Key holding the user name.")
    password_key: DataKey = Field(default="password", description="Key holding the password.")


class ReadReplica(KubeModel):
    """A read-only replica Aidbox may send read requests to (BOX_DB_RO_REPLICA_*), with the
    primary's database name and credentials."""

    host: HostName = Field(description="Replica host name or address.")
    port: Port = Field(default=POSTGRES_PORT, description="Replica port.")


class CloudNativePGRef(KubeModel):
    """A CloudNativePG Cluster in the same namespace: the host is its <name>-rw Service, the
    database, user and password come from its <name>-app Secret."""

    name: ObjectName = Field(description="Name of the CloudNativePG Cluster.")
    read_replica: bool = Field(
        default=False, description="Send read requests to its <name>-ro Service as well."
    )


class DatabaseSpec(KubeModel):
    """The PostgreSQL database Aidbox runs on. Unset: BOX_DB_* come from the cluster's
    ConfigMap and Secret, as before."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.host) != has(self.cloudNativePG)",
                    "message": "set database.host or database.cloudNativePG (exactly one)",
                },
                {
                    "rule": "!has(self.cloudNativePG) || (!has(self.name) && "
                    "!has(self.credentials) && !has(self.readReplica))",
                    "message": "database.cloudNativePG takes the database name, credentials and "
                    "replica from the CloudNativePG Cluster: do not set name, credentials or "
                    "readReplica with it",
                },
            ]
        }
    )

    host: HostName | None = Field(default=None, description="Database host (BOX_DB_HOST).")
    port: Port = Field(default=POSTGRES_PORT, description="Database port (BOX_DB_PORT).")
    name: ObjectName | None = Field(
        default=None, description="Database name (BOX_DB_DATABASE); unset: the ConfigMap's."
    )
    credentials: DatabaseCredentials | None = Field(
        default=None, description="Secret with user and password; unset: the Secret's BOX_DB_*."
    )
    read_replica: ReadReplica | None = Field(default=None, description="Optional read replica.")
    cloud_native_pg: CloudNativePGRef | None = Field(
        default=None,
        alias="cloudNativePG",
        description="Wire everything from a CloudNativePG Cluster instead of host and credentials.",
    )

    @model_validator(mode="after")
    def _one_source(self) -> DatabaseSpec:
        # The same rules as the CEL above, for specs read outside the API server (render -f).
        if (self.host is None) == (self.cloud_native_pg is None):
            raise ValueError("set database.host or database.cloudNativePG (exactly one)")
        if self.cloud_native_pg and (self.name or self.credentials or self.read_replica):
            raise ValueError(
                "database.cloudNativePG takes the database name, credentials and replica from "
                "the CloudNativePG Cluster: do not set name, credentials or readReplica with it"
            )
        return self
