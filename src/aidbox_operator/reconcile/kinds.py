"""The kinds an AidboxCluster is made of and refers to: the one table of them."""

from __future__ import annotations

from aidbox_operator.model import API_GROUP, API_VERSION, KIND, PLURAL
from aidbox_operator.model.channel import CHANNEL_KIND, CHANNEL_PLURAL
from aidbox_operator.runtime.kinds import (
    AUTOSCALERS,
    CONFIGMAPS,
    DEPLOYMENTS,
    HTTP_ROUTES,
    INGRESSES,
    NETWORK_POLICIES,
    PDBS,
    SECRETS,
    SERVICE_MONITORS,
    SERVICES,
    ResourceKind,
)

AIDBOX_CLUSTERS = ResourceKind(f"{API_GROUP}/{API_VERSION}", KIND, PLURAL)
RELEASE_CHANNELS = ResourceKind(
    f"{API_GROUP}/{API_VERSION}", CHANNEL_KIND, CHANNEL_PLURAL, namespaced=False
)
# Work-queue keys of channels: cluster-scoped, so their namespace part is empty (a cluster's
# key always has one).
CHANNEL_NAMESPACE = ""
# What the operator creates for each cluster, in the order the informers list them.
CHILDREN = (
    DEPLOYMENTS,
    SERVICES,
    PDBS,
    SERVICE_MONITORS,
    INGRESSES,
    HTTP_ROUTES,
    AUTOSCALERS,
    NETWORK_POLICIES,
)
# Children only some specs want: pruned when the spec stops wanting them.
OPTIONAL_CHILDREN = (
    PDBS,
    SERVICE_MONITORS,
    INGRESSES,
    HTTP_ROUTES,
    AUTOSCALERS,
    NETWORK_POLICIES,
)
OPTIONAL_KINDS = tuple(k.kind for k in OPTIONAL_CHILDREN)
CHILD_KINDS = tuple(k.kind for k in CHILDREN)
# Read by kind name: the children, and the ConfigMaps/Secrets a cluster references.
KINDS_BY_NAME = {k.kind: k for k in (*CHILDREN, CONFIGMAPS, SECRETS)}
