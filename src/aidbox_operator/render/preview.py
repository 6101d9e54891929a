"""What `aidbox-operator render` prints: exactly what the operator applies for a spec, with
placeholders where only the cluster knows the value."""

from __future__ import annotations

from typing import Any

from aidbox_operator.model import AidboxCluster, parse_image_version
from aidbox_operator.render.cluster import RenderContext, render_cluster
from aidbox_operator.render.secrets import (
    AUTH_KEYS,
    CLUSTER_SECRET_KEY,
    build_keys_secret,
    is_multibox,
)

UID_PLACEHOLDER = "<uid of the AidboxCluster>"
CONFIG_HASH_PLACEHOLDER = "<digest of the referenced ConfigMap and Secret data>"
KEY_PLACEHOLDER = "<generated once by the operator; never shown>"

PREVIEW_HEADER = f"""\
# What aidbox-operator applies for this AidboxCluster (server-side apply, field manager
# aidbox-operator). Values only the cluster knows are placeholders:
#   {UID_PLACEHOLDER}: ownerReferences point at the AidboxCluster's uid;
#   {CONFIG_HASH_PLACEHOLDER}: the pod template's config hash, which rolls the pods when
#     the referenced ConfigMap/Secret data changes (the applied-hash annotation covers it);
#   {KEY_PLACEHOLDER}: the shared JWT keys Secret, created once with generated keys and fed to
#     the pods, unless the referenced Secret/ConfigMap or spec.env sets the keys itself.
# A variable the operator derives (BOX_WEB_BASE_URL, JAVA_OPTS, BOX_INSTANCE_NAME, the keys)
# is left out when a ConfigMap/Secret the pods take their environment from sets it: this
# preview reads those found in the same input and counts any other as setting none.
# With spec.autoscaling or manageReplicas false, the Deployment's replicas shown are its count
# when created: the next pass leaves them to the autoscaler.
"""


def preview_keys(
    cluster: AidboxCluster, user_keys: frozenset[str] = frozenset()
) -> tuple[str, ...]:
    """The generated keys the pods get when the user's configuration sets none."""
    if not cluster.spec.auth_keys.generate:
        return ()
    own = {e.name for e in cluster.spec.env} | user_keys
    keys = tuple(k for k in AUTH_KEYS if k not in own)
    if is_multibox(parse_image_version(cluster.spec.image).repository):
        keys += (CLUSTER_SECRET_KEY,) if CLUSTER_SECRET_KEY not in own else ()
    return keys


def render_preview(
    cluster: AidboxCluster, user_keys: frozenset[str] = frozenset()
) -> list[dict[str, Any]]:
    """`user_keys`: the keys of the envFrom sources known to the caller."""
    meta = cluster.metadata.model_copy(update={"uid": UID_PLACEHOLDER})
    cluster = cluster.model_copy(update={"metadata": meta})
    keys = preview_keys(cluster, user_keys)
    context = RenderContext(CONFIG_HASH_PLACEHOLDER, keys, user_keys=user_keys)
    manifests = render_cluster(cluster, context)
    if keys:
        secret = build_keys_secret(cluster, {})
        del secret["data"]
        secret["stringData"] = dict.fromkeys(keys, KEY_PLACEHOLDER)
        manifests.insert(0, secret)
    return manifests
