"""spec.networkPolicy: which traffic may reach the cluster's Aidbox pods.

The peers are a curated subset of NetworkPolicy's (label selectors and IP blocks), each refused
at admission when it would select nothing or everything by mistake: an empty peer (in
Kubernetes `{}` admits every pod of the namespace), a selector expression without values, a
malformed CIDR.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator
from pydantic.config import JsonDict

from aidbox_operator.model.base import KubeModel

# A label key (optional DNS-subdomain prefix, then a name of at most 63 characters).
_LABEL_KEY_PATTERN = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
_LABEL_KEY = re.compile(_LABEL_KEY_PATTERN)
LabelKey = Annotated[str, Field(min_length=1, max_length=317, pattern=_LABEL_KEY_PATTERN)]
SelectorValue = Annotated[
    str, Field(max_length=63, pattern=r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
]
Cidr = Annotated[
    str,
    Field(
        min_length=1,
        max_length=43,
        description="An IPv4 or IPv6 range in CIDR notation (10.0.0.0/8, fd00::/8).",
        json_schema_extra={
            "x-kubernetes-validations": [
                {"rule": "isCIDR(self)", "message": "must be a CIDR such as 10.0.0.0/8"}
            ]
        },
    ),
]


def _check_cidr(value: str) -> str:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError as err:
        raise ValueError(f"{value!r} is not a CIDR such as 10.0.0.0/8: {err}") from err
    if "/" not in value:
        raise ValueError(f"{value!r} is not a CIDR such as 10.0.0.0/8: it lacks a prefix length")
    return value


class SelectorRequirement(KubeModel):
    """One matchExpressions entry of a label selector."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.operator in ['In', 'NotIn'] ? "
                    "(has(self.values) && size(self.values) > 0) : "
                    "(!has(self.values) || size(self.values) == 0)",
                    "message": "In and NotIn need values; Exists and DoesNotExist take none",
                }
            ]
        }
    )

    key: LabelKey = Field(description="Label key.")
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"] = Field(
        description="How the key's value is compared."
    )
    values: list[SelectorValue] = Field(
        default_factory=list,
        max_length=64,
        description="Values for In and NotIn; empty for Exists and DoesNotExist.",
    )

    @model_validator(mode="after")
    def _values_fit(self) -> SelectorRequirement:
        if (self.operator in ("In", "NotIn")) != bool(self.values):
            raise ValueError("In and NotIn need values; Exists and DoesNotExist take none")
        return self


class LabelSelector(KubeModel):
    """A label selector; both parts empty ({}) selects everything."""

    # Keys are plain strings in the schema (a structural schema has no propertyNames): checked
    # here, and by the API server when the NetworkPolicy is applied.
    match_labels: dict[str, SelectorValue] = Field(
        default_factory=dict,
        max_length=32,
        description="Labels that must all be present with these values.",
    )
    match_expressions: list[SelectorRequirement] = Field(
        default_factory=list, max_length=16, description="Requirements that must all hold."
    )

    @field_validator("match_labels")
    @classmethod
    def _label_keys(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if not _LABEL_KEY.match(key) or len(key.rpartition("/")[2]) > 63:
                raise ValueError(f"{key!r} is not a label key (an optional prefix/ and a name)")
        return value


class IPBlock(KubeModel):
    """An IP range, less some ranges inside it."""

    cidr: Cidr = Field(description="The range (10.0.0.0/8, fd00::/8).")
    except_: list[Cidr] = Field(
        default_factory=list,
        max_length=16,
        alias="except",
        description="Ranges inside cidr left out.",
    )

    @field_validator("cidr")
    @classmethod
    def _cidr(cls, value: str) -> str:
        return _check_cidr(value)

    @field_validator("except_")
    @classmethod
    def _excepts(cls, value: list[str]) -> list[str]:
        return [_check_cidr(v) for v in value]


_PEER_RULE: JsonDict = {
    "rule": "has(self.ipBlock) != (has(self.namespaceSelector) || has(self.podSelector))",
    "message": "a peer is an ipBlock, or a namespaceSelector and/or a podSelector (an empty "
    "peer would admit every pod of the cluster's namespace)",
}


class NetworkPeer(KubeModel):
    """Where allowed traffic comes from: pods (podSelector) in namespaces (namespaceSelector;
    unset: the cluster's own namespace), or an IP range (ipBlock). `namespaceSelector: {}`
    means every namespace."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [_PEER_RULE]})

    namespace_selector: LabelSelector | None = Field(
        default=None,
        description="Namespaces by their labels (kubernetes.io/metadata.name holds the name).",
    )
    pod_selector: LabelSelector | None = Field(default=None, description="Pods by their labels.")
    ip_block: IPBlock | None = Field(default=None, description="An IP range.")

    @model_validator(mode="after")
    def _one_kind(self) -> NetworkPeer:
        selects = self.namespace_selector is not None or self.pod_selector is not None
        if (self.ip_block is not None) == selects:
            raise ValueError(str(_PEER_RULE["message"]))
        return self


class NetworkPolicySpec(KubeModel):
    """A NetworkPolicy admitting only the named traffic to the cluster's Aidbox pods."""

    enabled: bool = Field(
        default=False,
        description="Keep a NetworkPolicy named like the cluster on its Aidbox pods: ingress "
        "only from the peers below, to the web port (and from metricsFrom to the metrics "
        "port). Egress is not restricted. The operator's own pods (app.kubernetes.io/name="
        "aidbox-operator in its namespace) are let in to the web port while it reads the "
        "pods' /health (in the cluster). Off: none (one the operator made before is deleted).",
    )
    ingress_controller: NetworkPeer | None = Field(
        default=None,
        description="The ingress controller or Gateway pods in front of the cluster, allowed "
        "to the web port: e.g. namespaceSelector {matchLabels: {kubernetes.io/metadata.name: "
        "ingress-nginx}}.",
    )
    allow_from: list[NetworkPeer] = Field(
        default_factory=list,
        max_length=32,
        description="Other namespaces, pods or IP ranges allowed to the web port (the apps "
        "that call Aidbox's API). Empty, and no ingressController: nothing reaches the web "
        "port.",
    )
    metrics_from: list[NetworkPeer] = Field(
        default_factory=list,
        max_length=16,
        description="Who may scrape the metrics port (e.g. the monitoring namespace), when "
        "spec.metrics.enabled.",
    )
