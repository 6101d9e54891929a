"""Names and keys of the Secret holding the shared JWT keys (its content is made in reconcile)."""

from __future__ import annotations

from aidbox_operator.model import AidboxCluster

PRIVATE_KEY = "BOX_SECURITY_AUTH_KEYS_PRIVATE"
PUBLIC_KEY = "BOX_SECURITY_AUTH_KEYS_PUBLIC"
SECRET_KEY = "BOX_SECURITY_AUTH_KEYS_SECRET"
CLUSTER_SECRET_KEY = "AIDBOX_CLUSTER_SECRET"
AUTH_KEYS = (PRIVATE_KEY, PUBLIC_KEY, SECRET_KEY)


def auth_keys_secret_name(cluster: AidboxCluster) -> str:
    return f"{cluster.name}-auth-keys"


def is_multibox(image_repository: str) -> bool:
    return image_repository.rsplit("/", 1)[-1] == "multibox"
