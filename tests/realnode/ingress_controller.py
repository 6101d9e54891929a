"""Traefik as the sandbox's ingress controller on the real nodes: its ServiceAccount and the RBAC
its Kubernetes Ingress provider needs, an IngressClass of its own, and a one-replica Deployment
reading the API through the ServiceAccount's token (in-cluster config). It routes straight to
the ready endpoints of an Ingress's Service (EndpointSlices), not through the ClusterIP."""

from __future__ import annotations

from typing import Any

from aidbox_sandbox.nodeconfig import REAL_NODE_LABEL
from aidbox_sandbox.traefik import TRAEFIK_IMAGE, TRAEFIK_UID

CONTROLLER = "traefik.io/ingress-controller"  # the controller name Traefik claims classes by
# Unprivileged ports: the container runs as a plain user.
WEB_PORT, TLS_PORT, PING_PORT = 8000, 8443, 9000
LABELS = {"app": "traefik"}

# What the provider's informers list and watch (pkg/provider/kubernetes/ingress/client.go):
# Secrets for TLS, Nodes and IngressClasses cluster-wide, status updates of Ingresses.
_RULES = [
    {"apiGroups": [""], "resources": ["services", "secrets", "nodes"]},
    {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"]},
    {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses", "ingressclasses"]},
]


def _rules() -> list[dict[str, Any]]:
    read = [{**rule, "verbs": ["get", "list", "watch"]} for rule in _RULES]
    status = {
        "apiGroups": ["networking.k8s.io"],
        "resources": ["ingresses/status"],
        "verbs": ["update"],
    }
    return [*read, status]


def _args(ingress_class: str) -> list[str]:
    return [
        # No packet may leave the sandbox: no version check, no usage statistics.
        "--global.checkNewVersion=false",
        "--global.sendAnonymousUsage=false",
        f"--entryPoints.web.address=:{WEB_PORT}",
        # Every router on this entry point is served with TLS, the certificate picked by SNI
        # from the Ingresses' spec.tls Secrets.
        f"--entryPoints.websecure.address=:{TLS_PORT}",
        "--entryPoints.websecure.http.tls=true",
        f"--entryPoints.traefik.address=:{PING_PORT}",
        "--ping=true",
        "--providers.kubernetesingress=true",
        f"--providers.kubernetesingress.ingressclass={ingress_class}",
        "--log.level=INFO",
    ]


def _deployment(namespace: str, account: str, ingress_class: str) -> dict[str, Any]:
    container = {
        "name": "traefik",
        "image": TRAEFIK_IMAGE,
        "imagePullPolicy": "Never",
        "args": _args(ingress_class),
        "ports": [{"name": "web", "containerPort": WEB_PORT}],
        "readinessProbe": {"httpGet": {"path": "/ping", "port": PING_PORT}, "periodSeconds": 1},
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}},
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": TRAEFIK_UID,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    pod = {
        "serviceAccountName": account,
        "nodeSelector": {REAL_NODE_LABEL: "true"},
        "tolerations": [{"key": REAL_NODE_LABEL, "operator": "Exists", "effect": "NoSchedule"}],
        "containers": [container],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "traefik", "namespace": namespace},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": LABELS},
            "template": {"metadata": {"labels": LABELS}, "spec": pod},
        },
    }


def manifests(namespace: str, ingress_class: str) -> list[dict[str, Any]]:
    """The controller's objects; the cluster-wide ones are named after `ingress_class`."""
    account = {"kind": "ServiceAccount", "name": "traefik", "namespace": namespace}
    return [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "traefik", "namespace": namespace},
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": ingress_class},
            "rules": _rules(),
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": ingress_class},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": ingress_class,
            },
            "subjects": [account],
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "IngressClass",
            "metadata": {"name": ingress_class},
            "spec": {"controller": CONTROLLER},
        },
        _deployment(namespace, "traefik", ingress_class),
    ]
