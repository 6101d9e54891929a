"""The plugin's API access: the kubernetes client's synchronous API (a command line has no
event loop to block), configured the way kubectl is (KUBECONFIG, --kubeconfig, --context, the
context's namespace)."""

from __future__ import annotations

from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from aidbox_operator.model import KIND
from aidbox_operator.model.constants import INSTANCE_LABEL, MANAGED_BY, MANAGED_BY_LABEL

GROUP, VERSION, PLURAL = "aidbox.io", "v1alpha1", "aidboxclusters"
PLUGIN_MANAGER = "kubectl-aidbox"
OPERATOR_SELECTOR = "app.kubernetes.io/name=aidbox-operator"


class PluginError(Exception):
    """A failure the user gets as one line on stderr (exit code 1), not a traceback."""


def _explain(err: ApiException, what: str) -> PluginError:
    if err.status == 404:
        return PluginError(f"{what} not found")
    if err.status == 403:
        return PluginError(f"{what}: forbidden (your credentials may not do this)")
    return PluginError(f"{what}: {err.status} {err.reason}")


class Kube:
    def __init__(self, kubeconfig: str | None = None, context: str | None = None) -> None:
        cfg = client.Configuration()
        try:
            config.load_kube_config(kubeconfig, context, client_configuration=cfg)
            _, active = config.list_kube_config_contexts(kubeconfig)
        except (config.ConfigException, OSError) as err:
            raise PluginError(f"no usable kubeconfig: {err}") from None
        if context:
            contexts, _ = config.list_kube_config_contexts(kubeconfig)
            active = next((c for c in contexts if c["name"] == context), active)
        self.namespace = str((active.get("context") or {}).get("namespace") or "default")
        self.api = client.ApiClient(cfg)
        self.custom = client.CustomObjectsApi(self.api)
        self.core = client.CoreV1Api(self.api)

    def clusters(self, namespace: str | None) -> list[dict[str, Any]]:
        """Every AidboxCluster of `namespace` (None: of all namespaces), by namespace/name."""
        found: Any
        try:
            if namespace is None:
                found = self.custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)
            else:
                found = self.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)
        except ApiException as err:
            raise _explain(err, f"{KIND}s") from None
        items: list[dict[str, Any]] = found.get("items") or []
        return sorted(items, key=lambda b: (b["metadata"]["namespace"], b["metadata"]["name"]))

    def cluster(self, namespace: str, name: str) -> dict[str, Any]:
        body: Any
        try:
            body = self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        except ApiException as err:
            raise _explain(err, f"{KIND} {namespace}/{name}") from None
        return dict(body)

    def annotate(self, namespace: str, name: str, annotations: dict[str, str | None]) -> None:
        """Set (or with None remove) annotations of an AidboxCluster: metadata only, so a GitOps
        tool re-applying the manifest, which does not name them, leaves them alone."""
        patch = {"metadata": {"annotations": annotations}}
        try:
            self.custom.patch_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name, patch, field_manager=PLUGIN_MANAGER
            )
        except ApiException as err:
            raise _explain(err, f"{KIND} {namespace}/{name}") from None

    def owned(self, namespace: str, name: str) -> dict[str, list[dict[str, Any]]]:
        """The operator's children of one cluster and its pods, by kind, as plain dicts."""
        selector = f"{MANAGED_BY_LABEL}={MANAGED_BY},{INSTANCE_LABEL}={name}"
        apps, policy = client.AppsV1Api(self.api), client.PolicyV1Api(self.api)
        listings: dict[str, Any] = {
            "Deployment": apps.list_namespaced_deployment,
            "ReplicaSet": apps.list_namespaced_replica_set,
            "Service": self.core.list_namespaced_service,
            "PodDisruptionBudget": policy.list_namespaced_pod_disruption_budget,
            "Pod": self.core.list_namespaced_pod,
            "Secret": self.core.list_namespaced_secret,
        }
        found: dict[str, list[dict[str, Any]]] = {}
        for kind, list_call in listings.items():
            try:
                items = list_call(namespace, label_selector=selector).items
            except ApiException as err:
                found[kind] = [{"error": f"{err.status} {err.reason}"}]
                continue
            found[kind] = [self.api.sanitize_for_serialization(i) for i in items]
        return found

    def events(self, namespace: str) -> list[dict[str, Any]]:
        items = self.core.list_namespaced_event(namespace).items
        return [self.api.sanitize_for_serialization(e) for e in items]

    def secret_values(self, namespace: str, names: list[str]) -> list[str]:
        """The values of these Secrets (those it may read), for the report to prove it holds
        none of them. They are never printed."""
        values: list[str] = []
        for secret_name in names:
            try:
                secret = self.core.read_namespaced_secret(secret_name, namespace)
            except ApiException:
                continue
            values += [str(v) for v in (secret.data or {}).values() if v]
        return values

    def operator_log(self, since_seconds: int) -> str:
        """The recent log of every operator pod this user may read ("" when none runs in
        pods, e.g. an operator run from a shell: pass --operator-log then)."""
        pods: Any
        try:
            pods = self.core.list_pod_for_all_namespaces(label_selector=OPERATOR_SELECTOR).items
        except ApiException:
            return ""
        texts: list[str] = []
        for pod in pods:
            try:
                meta: Any = pod.metadata
                text = self.core.read_namespaced_pod_log(
                    meta.name, meta.namespace, since_seconds=since_seconds
                )
                texts.append(str(text))
            except ApiException:
                continue
        return "\n".join(texts)
