"""The Ingress or Gateway API HTTPRoute in front of a cluster's Service, and the URL Aidbox is
told it is served at."""

from __future__ import annotations

from typing import Any

from aidbox_operator.model import AidboxCluster
from aidbox_operator.model.exposure import public_url, wildcard_domain
from aidbox_operator.model.version import parse_image_version
from aidbox_operator.render.labels import object_meta

# Aidbox reads either name; a value the user set under one of them wins over the derived URL.
BASE_URL_VARS = ("BOX_WEB_BASE_URL", "AIDBOX_BASE_URL")
CLUSTER_DOMAIN_VAR = "AIDBOX_CLUSTER_DOMAIN"
MULTIBOX_IMAGE = "healthsamurai/multibox"


def cluster_url(cluster: AidboxCluster) -> str | None:
    return public_url(cluster.spec.ingress, cluster.spec.http_route)


def exposure_env(cluster: AidboxCluster, user_keys: frozenset[str]) -> list[dict[str, Any]]:
    """BOX_WEB_BASE_URL from the served host, and for Multibox behind a wildcard host its
    AIDBOX_CLUSTER_DOMAIN, unless the user sets them (spec.env or the envFrom sources, whose
    key names are `user_keys`: a container's env would override those)."""
    spec = cluster.spec
    taken = user_keys | {var.name for var in spec.env}
    env = []
    url = cluster_url(cluster)
    if url and not taken.intersection(BASE_URL_VARS):
        env.append({"name": BASE_URL_VARS[0], "value": url})
    domain = wildcard_domain(spec.ingress, spec.http_route)
    multibox = parse_image_version(spec.image).repository.endswith(MULTIBOX_IMAGE)
    if domain and multibox and CLUSTER_DOMAIN_VAR not in taken:
        env.append({"name": CLUSTER_DOMAIN_VAR, "value": domain})
    return env


def build_ingress(cluster: AidboxCluster) -> dict[str, Any]:
    ingress = cluster.spec.ingress
    assert ingress is not None
    meta = object_meta(cluster, cluster.name, ingress.annotations)

    def paths() -> dict[str, Any]:  # one copy per rule: no object shared between two places
        backend = {"service": {"name": cluster.name, "port": {"name": "http"}}}
        return {
            "paths": [{"path": ingress.path, "pathType": ingress.path_type, "backend": backend}]
        }

    spec: dict[str, Any] = {}
    if ingress.class_name:
        spec["ingressClassName"] = ingress.class_name
    if ingress.tls_secret_name:
        spec["tls"] = [{"hosts": list(ingress.hosts), "secretName": ingress.tls_secret_name}]
    spec["rules"] = [{"host": host, "http": paths()} for host in ingress.hosts]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": meta,
        "spec": spec,
    }


def build_http_route(cluster: AidboxCluster) -> dict[str, Any]:
    route = cluster.spec.http_route
    assert route is not None
    meta = object_meta(cluster, cluster.name, route.annotations)
    parents = [p.model_dump(by_alias=True, exclude_none=True) for p in route.parent_refs]
    rule = {
        "matches": [{"path": {"type": "PathPrefix", "value": route.path}}],
        "backendRefs": [{"name": cluster.name, "port": cluster.spec.service.port}],
    }
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": meta,
        "spec": {"parentRefs": parents, "hostnames": list(route.hostnames), "rules": [rule]},
    }
