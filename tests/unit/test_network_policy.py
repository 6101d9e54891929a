"""spec.networkPolicy: the model's refusals, the policy rendered, and what a pass does with it
(on the in-memory FakeKube)."""

from __future__ import annotations

from typing import Any

import pytest
from fakeapi import FakeKube, Harness
from pydantic import ValidationError

from aidbox_operator.model import AidboxCluster, AidboxClusterSpec
from aidbox_operator.reconcile.controller import Controller
from aidbox_operator.render.network import build_network_policy

IMAGE = "healthsamurai/aidboxone:2510"
NGINX = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}
MONITORING = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}


def _policy(**spec: Any) -> dict[str, Any]:
    cluster = AidboxCluster.model_validate(
        {"metadata": {"name": "fhir", "namespace": "ns"}, "spec": spec}
    )
    return build_network_policy(cluster)


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        ({"allowFrom": [{}]}, "a peer is an ipBlock"),
        ({"allowFrom": [{"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}}]}, "a peer is"),
        ({"metricsFrom": [{"ipBlock": {"cidr": "10.0.0.300/8"}}]}, "not a CIDR"),
        ({"allowFrom": [{"ipBlock": {"cidr": "10.0.0.1"}}]}, "prefix length"),
        ({"allowFrom": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["x"]}}]}, "not a CIDR"),
        (
            {
                "allowFrom": [
                    {"podSelector": {"matchExpressions": [{"key": "a", "operator": "In"}]}}
                ]
            },
            "In and NotIn need values",
        ),
        (
            {
                "ingressController": {
                    "podSelector": {
                        "matchExpressions": [{"key": "a", "operator": "Exists", "values": ["b"]}]
                    }
                }
            },
            "take none",
        ),
        ({"allowFrom": [{"podSelector": {"matchLabels": {"bad key!": "x"}}}]}, "matchLabels"),
        ({"allowFrom": [{"namespace": "monitoring"}]}, "Extra inputs"),
    ],
)
def test_bad_peers_are_refused_with_the_field_named(policy: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as err:
        AidboxClusterSpec.model_validate({"networkPolicy": {"enabled": True, **policy}})
    assert message in str(err.value)


def test_the_policy_selects_the_pods_and_admits_only_the_named_peers() -> None:
    policy = _policy(
        port=8090,
        metrics={"enabled": True, "port": 9000},
        networkPolicy={
            "enabled": True,
            "ingressController": NGINX,
            "allowFrom": [{"namespaceSelector": {}}, {"ipBlock": {"cidr": "10.1.0.0/16"}}],
            "metricsFrom": [MONITORING],
        },
    )
    assert policy["metadata"]["name"] == "fhir"
    spec = policy["spec"]
    assert spec["podSelector"] == {
        "matchLabels": {"app.kubernetes.io/name": "aidbox", "app.kubernetes.io/instance": "fhir"}
    }
    # Egress stays open: only Ingress is restricted.
    assert spec["policyTypes"] == ["Ingress"]
    web, metrics = spec["ingress"]
    # `namespaceSelector: {}` (every namespace) is kept as written, not dropped.
    assert web == {
        "from": [NGINX, {"namespaceSelector": {}}, {"ipBlock": {"cidr": "10.1.0.0/16"}}],
        "ports": [{"protocol": "TCP", "port": 8090}],
    }
    assert metrics == {"from": [MONITORING], "ports": [{"protocol": "TCP", "port": 9000}]}


def test_no_metrics_rule_while_metrics_are_off_and_no_peer_admits_nothing() -> None:
    off = _policy(
        networkPolicy={"enabled": True, "ingressController": NGINX, "metricsFrom": [MONITORING]}
    )
    assert [r["ports"][0]["port"] for r in off["spec"]["ingress"]] == [8080]
    closed = _policy(networkPolicy={"enabled": True})
    assert closed["spec"]["ingress"] == [] and closed["spec"]["policyTypes"] == ["Ingress"]


def test_the_operator_reading_health_is_let_in_to_the_web_port() -> None:
    cluster = AidboxCluster.model_validate(
        {"metadata": {"name": "fhir"}, "spec": {"networkPolicy": {"enabled": True}}}
    )
    (web,) = build_network_policy(cluster, operator_namespace="ops")["spec"]["ingress"]
    assert web["from"] == [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ops"}},
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "aidbox-operator"}},
        }
    ]
    # Only while it reads /health (in the cluster): otherwise no such peer.
    reading = Controller(FakeKube(), aidbox_health=True, operator_namespace="ops")
    idle = Controller(FakeKube(), aidbox_health=False, operator_namespace="ops")
    assert (reading.reconciler.health_reader, idle.reconciler.health_reader) == ("ops", None)


def _ready(h: Harness, **spec: Any) -> None:
    h.config("ConfigMap", "aidbox", {"BOX_ID": "a"})
    h.config("Secret", "aidbox", {"BOX_ROOT_CLIENT_SECRET": "cw=="})
    h.cluster(**{"image": IMAGE, **spec})


async def test_a_network_policy_is_kept_repaired_and_pruned() -> None:
    h = Harness()
    _ready(h, networkPolicy={"enabled": True, "ingressController": NGINX})
    result = await h.reconcile()
    assert ("Created", "NetworkPolicy aidbox") in result.changes
    made = h.api.get_object("NetworkPolicy", "aidbox")
    assert made is not None and made["spec"]["ingress"][0]["from"] == [NGINX]
    h.roll_out()
    await h.reconcile()
    # A steady pass writes nothing; a change of the peers is applied.
    assert not (await h.reconcile()).changes
    h.update_spec(
        networkPolicy={"enabled": True, "ingressController": NGINX, "allowFrom": [MONITORING]}
    )
    result = await h.reconcile()
    assert ("Updated", "NetworkPolicy aidbox") in result.changes
    h.update_spec(networkPolicy={"enabled": False, "ingressController": NGINX})
    result = await h.reconcile()
    assert ("Deleted", "NetworkPolicy aidbox") in result.changes
    assert h.api.get_object("NetworkPolicy", "aidbox") is None
