"""The kinds an AidboxCluster is made of and refers to: the one table of them."""

from __future__ import annotations

from aidbox_operator.model import API_GROUP, API_VERSION, KIND, PLURAL
from aidbox_operator.runtime.kinds import (
    CONFIGMAPS,
    DEPLOYMENTS,
    PDBS,
    SECRETS,
    SERVICE_MONITORS,
    SERVICES,
    ResourceKind,
)

AIDBOX_CLUSTERS = ResourceKind(f"{API_GROUP}/{API_VERSION}", KIND, PLURAL)
# What the operator creates for each cluster, in the order the informers list them.
CHILDREN = (DEPLOYMENTS, SERVICES, PDBS, SERVICE_MONITORS)
CHILD_KINDS = tuple(k.kind for k in CHILDREN)
# Read by kind name: the children, and the ConfigMaps/Secrets a cluster references.
KINDS_BY_NAME = {k.kind: k for k in (*CHILDREN, CONFIGMAPS, SECRETS)}
