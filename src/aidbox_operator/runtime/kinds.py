"""Where the built-in kinds (and the few well-known extension kinds) live in the API."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ResourceKind:
    """Where a kind lives in the API."""

    api_version: str
    kind: str
    plural: str
    namespaced: bool = True

    def path(self, namespace: str | None = None, name: str | None = None, sub: str = "") -> str:
        base = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        if name:
            base += f"/{name}"
        if sub:
            base += f"/{sub}"
        return base

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]


DEPLOYMENTS = ResourceKind("apps/v1", "Deployment", "deployments")
SERVICES = ResourceKind("v1", "Service", "services")
PDBS = ResourceKind("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets")
SECRETS = ResourceKind("v1", "Secret", "secrets")
CONFIGMAPS = ResourceKind("v1", "ConfigMap", "configmaps")
PODS = ResourceKind("v1", "Pod", "pods")
EVENTS = ResourceKind("v1", "Event", "events")
LEASES = ResourceKind("coordination.k8s.io/v1", "Lease", "leases")
CRDS = ResourceKind(
    "apiextensions.k8s.io/v1", "CustomResourceDefinition", "customresourcedefinitions", False
)
SERVICE_MONITORS = ResourceKind("monitoring.coreos.com/v1", "ServiceMonitor", "servicemonitors")
INGRESSES = ResourceKind("networking.k8s.io/v1", "Ingress", "ingresses")
HTTP_ROUTES = ResourceKind("gateway.networking.k8s.io/v1", "HTTPRoute", "httproutes")
AUTOSCALERS = ResourceKind("autoscaling/v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers")
NETWORK_POLICIES = ResourceKind("networking.k8s.io/v1", "NetworkPolicy", "networkpolicies")
