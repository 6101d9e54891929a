"""Pod settings of the AidboxCluster spec passed through to the pod template: volumes, extra
containers, security contexts, affinity, extra envFrom sources.

The Kubernetes objects stay free-form (the API server validates them when the Deployment is
applied), but what would make the Deployment impossible or ambiguous is refused at admission
by the schema (required names, no duplicates, no name the operator uses itself), and again by
the validators here, which also refuse field names Kubernetes does not know (`check_fields`).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import ConfigDict, Field, WithJsonSchema, model_validator
from pydantic.config import JsonDict

from aidbox_operator.model.base import KubeModel
from aidbox_operator.model.constants import CONTAINER_NAME, OPERATOR_VOLUMES
from aidbox_operator.model.kubeschema import check_fields

# Names of volumes and containers are DNS labels (RFC 1123).
_DNS_LABEL = {
    "type": "string",
    "minLength": 1,
    "maxLength": 63,
    "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
}
_RESERVED_MESSAGE = (
    f"volume names reserved by the operator ({', '.join(OPERATOR_VOLUMES)}: the /tmp emptyDir "
    "under a read-only root filesystem, the init bundle) cannot be used: choose another name"
)

Volume = Annotated[
    dict[str, Any],
    WithJsonSchema(
        {
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": True,
            "required": ["name"],
            "properties": {
                "name": {**_DNS_LABEL, "description": "Volume name, unique in the pod."},
            },
            "x-kubernetes-validations": [
                {
                    "rule": f"!(self.name in {list(OPERATOR_VOLUMES)})",
                    "message": _RESERVED_MESSAGE,
                }
            ],
        }
    ),
]
VolumeMount = Annotated[
    dict[str, Any],
    WithJsonSchema(
        {
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": True,
            "required": ["name", "mountPath"],
            "properties": {
                "name": {**_DNS_LABEL, "description": "Name of a volume in spec.volumes."},
                "mountPath": {
                    "type": "string",
                    "minLength": 1,
                    "description": "Path in the Aidbox container, unique among its mounts.",
                },
            },
        }
    ),
]
Container = Annotated[
    dict[str, Any],
    WithJsonSchema(
        {
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": True,
            "required": ["name", "image"],
            "properties": {
                "name": {**_DNS_LABEL, "description": "Container name, unique in the pod."},
                "image": {"type": "string", "minLength": 1, "description": "Container image."},
            },
            "x-kubernetes-validations": [
                {
                    "rule": f"self.name != '{CONTAINER_NAME}'",
                    "message": f"the container name {CONTAINER_NAME} is the Aidbox container's "
                    "own: choose another name",
                }
            ],
        }
    ),
]

# Lists keyed by a field: the API server refuses two entries with one key at admission, and
# server-side apply merges them entry by entry.
VOLUME_LIST: JsonDict = {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]}
MOUNT_LIST: JsonDict = {
    "x-kubernetes-list-type": "map",
    "x-kubernetes-list-map-keys": ["mountPath"],
}
CONTAINER_LIST = VOLUME_LIST

# Rules across fields of the spec (the CRD's spec-level x-kubernetes-validations).
POD_VALIDATIONS: list[JsonDict] = [
    {
        "rule": "!has(self.volumeMounts) || self.volumeMounts.all(m, has(self.volumes) && "
        "self.volumes.exists(v, v.name == m.name))",
        "message": "every volumeMounts[].name must name a volume in spec.volumes",
    },
    {
        "rule": "!has(self.sidecars) || !has(self.initContainers) || "
        "self.sidecars.all(s, self.initContainers.all(i, i.name != s.name))",
        "message": "sidecars and initContainers share one namespace of container names: "
        "a name may appear only once",
    },
]


class ExtraEnvSource(KubeModel):
    """A ConfigMap or Secret named explicitly."""

    name: str = Field(min_length=1, max_length=253, description="Object name.")
    optional: bool = Field(
        default=False,
        description="Start even when the object does not exist. A required object that is "
        "missing holds the rollout and is reported in status.",
    )


class ExtraEnvFrom(KubeModel):
    """One more envFrom source of the Aidbox container: a ConfigMap or a Secret."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.configMapRef) != has(self.secretRef)",
                    "message": "each extraEnvFrom entry sets configMapRef or secretRef, "
                    "exactly one",
                }
            ]
        }
    )

    config_map_ref: ExtraEnvSource | None = Field(default=None, description="A ConfigMap.")
    secret_ref: ExtraEnvSource | None = Field(default=None, description="A Secret.")

    @model_validator(mode="after")
    def _exactly_one(self) -> ExtraEnvFrom:
        if (self.config_map_ref is None) == (self.secret_ref is None):
            raise ValueError("each extraEnvFrom entry sets configMapRef or secretRef, exactly one")
        return self

    def source(self) -> tuple[str, ExtraEnvSource]:
        """The kind of the object (ConfigMap or Secret) and the reference."""
        if self.config_map_ref is not None:
            return "ConfigMap", self.config_map_ref
        assert self.secret_ref is not None  # _exactly_one holds for every instance
        return "Secret", self.secret_ref


def _unique(names: list[str], what: str) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValueError(f"{what}: {name!r} appears twice; names must be unique")
        seen.add(name)


def check_volumes(volumes: list[dict[str, Any]], mounts: list[dict[str, Any]]) -> None:
    """The admission rules on volumes and mounts, for specs that did not pass admission (a
    file given to `aidbox-operator render`, a CRD older than the operator)."""
    for index, volume in enumerate(volumes):
        check_fields("V1Volume", volume, f"volumes[{index}]")
        if not volume.get("name"):
            raise ValueError(f"volumes[{index}]: a volume needs a name")
        if volume["name"] in OPERATOR_VOLUMES:
            raise ValueError(f"volumes[{index}]: {_RESERVED_MESSAGE}")
    _unique([v["name"] for v in volumes], "volumes")
    names = {v["name"] for v in volumes}
    for index, mount in enumerate(mounts):
        check_fields("V1VolumeMount", mount, f"volumeMounts[{index}]")
        if not mount.get("name") or not mount.get("mountPath"):
            raise ValueError(f"volumeMounts[{index}]: a mount needs a name and a mountPath")
        if mount["name"] not in names:
            raise ValueError(
                f"volumeMounts[{index}]: every volumeMounts[].name must name a volume in "
                f"spec.volumes ({mount['name']!r} does not)"
            )
    _unique([m["mountPath"] for m in mounts], "volumeMounts[].mountPath")


def check_containers(init: list[dict[str, Any]], sidecars: list[dict[str, Any]]) -> None:
    """The admission rules on init containers and sidecars (see check_volumes)."""
    for field, containers in (("initContainers", init), ("sidecars", sidecars)):
        for index, container in enumerate(containers):
            where = f"{field}[{index}]"
            check_fields("V1Container", container, where)
            if not container.get("name") or not container.get("image"):
                raise ValueError(f"{where}: a container needs a name and an image")
            if container["name"] == CONTAINER_NAME:
                raise ValueError(
                    f"{where}: the container name {CONTAINER_NAME} is the Aidbox container's "
                    "own: choose another name"
                )
    _unique([c["name"] for c in [*init, *sidecars]], "initContainers and sidecars")
