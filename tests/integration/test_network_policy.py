"""spec.networkPolicy on the real API server: the operator (with its real RBAC) keeps an owned
NetworkPolicy on the cluster's pods, follows the spec, and deletes it when turned off."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from helpers import wait_for
from kube_helpers import create_cluster, make_config, patch_spec, wait_condition

pytestmark = pytest.mark.usefixtures("operator")
NGINX = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}
APPS = {"podSelector": {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["app"]}]}}
MONITORING = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
POLICY = {
    "enabled": True,
    "ingressController": NGINX,
    "allowFrom": [APPS, {"ipBlock": {"cidr": "10.20.0.0/16", "except": ["10.20.9.0/24"]}}],
    "metricsFrom": [MONITORING],
}


def _policy(api: Any, name: str, ns: str) -> dict[str, Any] | None:
    try:
        body = client.NetworkingV1Api(api).read_namespaced_network_policy(name, ns)
    except ApiException as err:
        if err.status == 404:
            return None
        raise
    return dict(api.sanitize_for_serialization(body))


def test_a_network_policy_is_owned_follows_the_spec_and_is_pruned(
    api_client: Any, namespace: str
) -> None:
    make_config(api_client, "np", namespace)
    created = create_cluster(
        api_client, "np", namespace, metrics={"enabled": True, "port": 8765}, networkPolicy=POLICY
    )
    wait_condition(api_client, "np", namespace, "Ready")
    policy = _policy(api_client, "np", namespace)
    assert policy is not None
    owners = policy["metadata"]["ownerReferences"]
    assert [(o["kind"], o["uid"], o["controller"]) for o in owners] == [
        ("AidboxCluster", created["metadata"]["uid"], True)
    ]
    spec = policy["spec"]
    assert spec["podSelector"] == {
        "matchLabels": {"app.kubernetes.io/instance": "np", "app.kubernetes.io/name": "aidbox"}
    }
    pods = client.CoreV1Api(api_client).list_namespaced_pod(
        namespace, label_selector="app.kubernetes.io/name=aidbox,app.kubernetes.io/instance=np"
    )
    assert pods.items, "the policy's selector selects the cluster's pods"
    assert spec["policyTypes"] == ["Ingress"]
    web, metrics = spec["ingress"]
    assert web["ports"] == [{"port": 8080, "protocol": "TCP"}]
    assert web["from"] == [
        NGINX,
        APPS,
        {"ipBlock": {"cidr": "10.20.0.0/16", "except": ["10.20.9.0/24"]}},
    ]
    assert metrics == {"from": [MONITORING], "ports": [{"port": 8765, "protocol": "TCP"}]}

    # Metrics off: the scrape rule goes; the web rule stays.
    patch_spec(api_client, "np", namespace, {"metrics": {"enabled": False}})
    wait_for(
        lambda: len((_policy(api_client, "np", namespace) or {})["spec"]["ingress"]) == 1,
        timeout=60,
        message="the metrics rule dropped",
    )
    # A pass that changes another child leaves the policy as the API server holds it: what
    # it returns (defaults, omitted empties) reads as in sync, so it is not applied again.
    wait_condition(api_client, "np", namespace, "Ready")
    version = (_policy(api_client, "np", namespace) or {})["metadata"]["resourceVersion"]
    patch_spec(api_client, "np", namespace, {"podDisruptionBudget": {"maxUnavailable": "50%"}})
    wait_for(
        lambda: (
            client.PolicyV1Api(api_client)
            .read_namespaced_pod_disruption_budget("np", namespace)
            .spec.max_unavailable
            == "50%"
        ),
        timeout=60,
        message="the PodDisruptionBudget updated (the operator ran a pass)",
    )
    wait_condition(api_client, "np", namespace, "Ready")
    assert (_policy(api_client, "np", namespace) or {})["metadata"]["resourceVersion"] == version
    patch_spec(api_client, "np", namespace, {"networkPolicy": {"enabled": False}})
    wait_for(
        lambda: _policy(api_client, "np", namespace) is None,
        timeout=60,
        message="the NetworkPolicy pruned",
    )
    wait_condition(api_client, "np", namespace, "Ready")


def test_an_invalid_peer_is_refused_at_admission(api_client: Any, namespace: str) -> None:
    for peer, words in (
        ({}, "a peer is an ipBlock"),
        ({"ipBlock": {"cidr": "10.0.0.300/8"}}, "must be a CIDR"),
    ):
        with pytest.raises(ApiException) as err:
            create_cluster(
                api_client, "bad", namespace, networkPolicy={"enabled": True, "allowFrom": [peer]}
            )
        assert err.value.status == 422 and words in str(err.value.body), err.value.body
