"""The Secret holding the shared JWT keys: its name, its keys and its manifest.

The key material itself is generated in reconcile (randomness has no place in render).
"""

from __future__ import annotations

from typing import Any

from aidbox_operator.model import AidboxCluster
from aidbox_operator.model.constants import AUTH_KEYS_SUFFIX
from aidbox_operator.render.labels import object_meta

PRIVATE_KEY = "BOX_SECURITY_AUTH_KEYS_PRIVATE"
PUBLIC_KEY = "BOX_SECURITY_AUTH_KEYS_PUBLIC"
SECRET_KEY = "BOX_SECURITY_AUTH_KEYS_SECRET"
CLUSTER_SECRET_KEY = "AIDBOX_CLUSTER_SECRET"
AUTH_KEYS = (PRIVATE_KEY, PUBLIC_KEY, SECRET_KEY)


def auth_keys_secret_name(cluster: AidboxCluster) -> str:
    return f"{cluster.name}{AUTH_KEYS_SUFFIX}"


def is_multibox(image_repository: str) -> bool:
    return image_repository.rsplit("/", 1)[-1] == "multibox"


def build_keys_secret(cluster: AidboxCluster, data: dict[str, str]) -> dict[str, Any]:
    """The keys Secret with `data` (base64 values, as the API stores them)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": object_meta(cluster, auth_keys_secret_name(cluster)),
        "data": data,
    }
