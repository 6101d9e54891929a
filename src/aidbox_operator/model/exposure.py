"""How users reach a cluster: an Ingress or a Gateway API HTTPRoute in front of its Service,
and the public URL Aidbox is told it lives at (BOX_WEB_BASE_URL)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from aidbox_operator.model.base import KubeModel, ObjectName

# A DNS name, or a wildcard in its first label only (Multibox serves one box per subdomain).
Hostname = Annotated[
    str,
    Field(
        min_length=1,
        max_length=253,
        pattern=r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$",
    ),
]


class IngressSpec(KubeModel):
    """An Ingress routing the hosts to the cluster's Service."""

    class_name: ObjectName | None = Field(
        default=None,
        description="IngressClass to use (ingressClassName); unset: the cluster's default class.",
    )
    hosts: list[Hostname] = Field(
        min_length=1,
        max_length=16,
        description="Host names served. The first is the cluster's URL (BOX_WEB_BASE_URL). A "
        "wildcard (*.boxes.example.com) serves every Multibox box under that domain; Multibox "
        "then gets AIDBOX_CLUSTER_DOMAIN=boxes.example.com.",
    )
    path: str = Field(default="/", pattern=r"^/[^\s]*$", max_length=256, description="Path served.")
    path_type: Literal["Prefix", "Exact", "ImplementationSpecific"] = Field(
        default="Prefix", description="How the path matches."
    )
    tls_secret_name: ObjectName | None = Field(
        default=None,
        description="Secret holding the TLS certificate for the hosts (e.g. made by "
        "cert-manager). Set: the URL is https.",
    )
    annotations: dict[str, str] = Field(
        default_factory=dict,
        description="Annotations on the Ingress (for the ingress controller or cert-manager).",
    )


class ParentReference(KubeModel):
    """A Gateway the route attaches to."""

    name: ObjectName = Field(description="Gateway name.")
    namespace: ObjectName | None = Field(
        default=None, description="Gateway namespace; unset: the cluster's."
    )
    section_name: ObjectName | None = Field(
        default=None, description="Listener of the Gateway to attach to."
    )


class HTTPRouteSpec(KubeModel):
    """A Gateway API HTTPRoute to the cluster's Service (needs the Gateway API CRDs)."""

    parent_refs: list[ParentReference] = Field(
        min_length=1, max_length=8, description="Gateways the route attaches to."
    )
    hostnames: list[Hostname] = Field(
        min_length=1,
        max_length=16,
        description="Host names served. The first is the cluster's URL (BOX_WEB_BASE_URL).",
    )
    path: str = Field(
        default="/", pattern=r"^/[^\s]*$", max_length=256, description="Path prefix served."
    )
    https: bool = Field(
        default=True,
        description="Whether the Gateway's listener terminates TLS for these hosts: the URL "
        "is https (true) or http (false).",
    )
    annotations: dict[str, str] = Field(
        default_factory=dict, description="Annotations on the HTTPRoute."
    )


def public_url(ingress: IngressSpec | None, route: HTTPRouteSpec | None) -> str | None:
    """The URL the cluster is served at (None: not exposed). A wildcard host stands for the
    domain under it: Multibox's own UI lives at the domain itself."""
    if ingress is not None:
        scheme = "https" if ingress.tls_secret_name else "http"
        host, path = ingress.hosts[0], ingress.path
    elif route is not None:
        scheme = "https" if route.https else "http"
        host, path = route.hostnames[0], route.path
    else:
        return None
    return f"{scheme}://{host.removeprefix('*.')}{path.rstrip('/')}"


def wildcard_domain(ingress: IngressSpec | None, route: HTTPRouteSpec | None) -> str | None:
    """The domain of the first wildcard host (Multibox's AIDBOX_CLUSTER_DOMAIN)."""
    hosts = ingress.hosts if ingress else route.hostnames if route else []
    return next((h.removeprefix("*.") for h in hosts if h.startswith("*.")), None)
