"""The NetworkPolicy on a cluster's Aidbox pods (spec.networkPolicy)."""

from __future__ import annotations

from typing import Any

from aidbox_operator.model import AidboxCluster
from aidbox_operator.model.constants import NAME_LABEL
from aidbox_operator.model.network import NetworkPeer
from aidbox_operator.render.labels import object_meta, selector_labels

# Every namespace carries its name in this label (set by the API server).
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
OPERATOR_APP_NAME = "aidbox-operator"


def wants_network_policy(cluster: AidboxCluster) -> bool:
    return cluster.spec.network_policy.enabled


def _peer(peer: NetworkPeer) -> dict[str, Any]:
    # by_alias: ipBlock's `except`. Empty parts are left out as the API server leaves them
    # out; a selector the user wrote as `{}` stays `{}` (every namespace, or every pod).
    return peer.model_dump(by_alias=True, exclude_defaults=True)


def _port(port: int) -> list[dict[str, Any]]:
    return [{"protocol": "TCP", "port": port}]


def operator_peer(namespace: str) -> dict[str, Any]:
    """The operator's own pods (deploy/ and the chart label them alike), which read each
    Aidbox pod's /health on the web port."""
    return {
        "namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: namespace}},
        "podSelector": {"matchLabels": {NAME_LABEL: OPERATOR_APP_NAME}},
    }


def build_network_policy(
    cluster: AidboxCluster, operator_namespace: str | None = None
) -> dict[str, Any]:
    """Ingress to the web port from the ingress controller and allowFrom (and from the
    operator, when it reads /health: `operator_namespace`), and to the metrics port from
    metricsFrom while metrics are on. No rule, or rules without peers, admit nothing: a
    policy that lists Ingress in policyTypes denies whatever no rule allows. Egress is left
    out of policyTypes: it stays unrestricted."""
    spec = cluster.spec
    policy = spec.network_policy
    web = [policy.ingress_controller] if policy.ingress_controller else []
    web += policy.allow_from
    peers = [_peer(p) for p in web]
    if operator_namespace:
        peers.append(operator_peer(operator_namespace))
    rules: list[dict[str, Any]] = []
    if peers:
        rules.append({"from": peers, "ports": _port(spec.port)})
    if spec.metrics.enabled and policy.metrics_from:
        rules.append(
            {"from": [_peer(p) for p in policy.metrics_from], "ports": _port(spec.metrics.port)}
        )
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": object_meta(cluster, cluster.name),
        "spec": {
            "podSelector": {"matchLabels": selector_labels(cluster)},
            "policyTypes": ["Ingress"],
            "ingress": rules,
        },
    }
