"""One GitOps setup per test: a git repository on the sandbox's git server, a Flux GitRepository
and a Kustomization (wait, prune, a short interval and timeout) applying the repository to the
test's namespace, and ways to read the Kustomization back."""

from __future__ import annotations

import re
import urllib.request
from dataclasses import dataclass, field
from typing import Any

import yaml
from kubernetes import client

from helpers import wait_for
from kube_helpers import GROUP, PLURAL, VERSION, apply, condition, get_cluster

SOURCE = ("source.toolkit.fluxcd.io", "v1", "gitrepositories")
KUSTOMIZE = ("kustomize.toolkit.fluxcd.io", "v1", "kustomizations")
NAME = "apps"
CLUSTER = "fhir"
IMAGE = "healthsamurai/aidboxone"
# Flux's sync loop in these tests: both objects every 5 s.
INTERVAL = "5s"


def aidbox_files(tag: str = "2509", **spec: Any) -> dict[str, str]:
    """The repository's content: a ConfigMap, a Secret and an AidboxCluster using them."""
    documents: list[dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": CLUSTER},
            "data": {"BOX_ID": CLUSTER},
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": CLUSTER},
            "stringData": {"BOX_ADMIN_PASSWORD": "test-only-password"},
        },
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "AidboxCluster",
            "metadata": {"name": CLUSTER},
            "spec": {"image": f"{IMAGE}:{tag}", "replicas": 2, **spec},
        },
    ]
    return {"aidbox.yaml": yaml.safe_dump_all(documents, sort_keys=False)}


def git_repository(namespace: str, url: str) -> dict[str, Any]:
    group, version, _ = SOURCE
    return {
        "apiVersion": f"{group}/{version}",
        "kind": "GitRepository",
        "metadata": {"name": NAME, "namespace": namespace},
        "spec": {"interval": INTERVAL, "timeout": "20s", "url": url, "ref": {"branch": "main"}},
    }


def kustomization(
    namespace: str, timeout: str, name: str = NAME, path: str = "./", target: bool = True
) -> dict[str, Any]:
    """What README's GitOps section shows, with the test's short interval and timeout. Without
    `target` no targetNamespace (kustomize would set it on kinds it cannot tell are
    cluster-scoped, such as AidboxReleaseChannel)."""
    group, version, _ = KUSTOMIZE
    body: dict[str, Any] = {
        "apiVersion": f"{group}/{version}",
        "kind": "Kustomization",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "interval": INTERVAL,
            "retryInterval": INTERVAL,
            "timeout": timeout,
            "path": path,
            "prune": True,
            "wait": True,
            "sourceRef": {"kind": "GitRepository", "name": NAME},
            "targetNamespace": namespace,
        },
    }
    if not target:
        del body["spec"]["targetNamespace"]
    return body


@dataclass
class GitOps:
    """A repository and the Flux objects syncing it (or its folder `path`) into `namespace`.
    Several share one repository and GitRepository by passing the first one's `repo`."""

    api: client.ApiClient
    flux: Any  # aidbox_sandbox.flux.Flux
    namespace: str
    timeout: str = "45s"
    name: str = NAME
    path: str = "./"
    repo: Any = field(default=None)
    target: bool = True  # targetNamespace: the namespace (kustomization())

    def __post_init__(self) -> None:
        if self.repo is None:
            self.repo = self.flux.repository(f"{self.namespace}-{NAME}")

    def start(self, files: dict[str, str] | None = None) -> str:
        """Commit `files` (if any), then create the GitRepository and the Kustomization;
        returns the revision Flux will name (main@sha1:<sha>)."""
        if files is not None:
            self.commit(files, "first")
        apply(self.api, git_repository(self.namespace, self.repo.url))
        flux_object = kustomization(self.namespace, self.timeout, self.name, self.path, self.target)
        apply(self.api, flux_object)
        return self.revision()

    def revision(self) -> str:
        return f"main@sha1:{self.repo.head()}"

    def commit(self, files: dict[str, str], message: str) -> str:
        return f"main@sha1:{self.repo.commit(files, message)}"

    def get(self) -> dict[str, Any]:
        group, version, plural = KUSTOMIZE
        body: dict[str, Any] = client.CustomObjectsApi(self.api).get_namespaced_custom_object(
            group, version, self.namespace, plural, self.name
        )
        return body

    def ready(self) -> dict[str, Any]:
        """The Kustomization's Ready condition ({} before it has one)."""
        return condition(self.get(), "Ready")

    def applied(self, revision: str) -> dict[str, Any] | None:
        """The Kustomization when it is Ready on `revision`, else None."""
        body = self.get()
        status = body.get("status") or {}
        ready = condition(body, "Ready").get("status") == "True"
        return body if ready and status.get("lastAppliedRevision") == revision else None

    def failed(self, revision: str) -> dict[str, Any] | None:
        """The Kustomization when it reports `revision` failed (Ready=False), else None."""
        body = self.get()
        attempted = (body.get("status") or {}).get("lastAttemptedRevision")
        failing = condition(body, "Ready").get("status") == "False"
        return body if failing and attempted == revision else None

    def wait_applied(self, revision: str, timeout: float = 120) -> dict[str, Any]:
        return wait_for(
            lambda: self.applied(revision),
            timeout=timeout,
            interval=0.5,
            message=f"Kustomization Ready on {revision}; last: {self._ready_text()}",
        )

    def _ready_text(self) -> str:
        try:
            return str(self.ready())
        except client.ApiException as exc:
            return str(exc.reason)

    def cluster(self) -> dict[str, Any]:
        return get_cluster(self.api, CLUSTER, self.namespace)

    def reconciles(self) -> int:
        """kustomize-controller's finished reconciles of this Kustomization (its metrics)."""
        with urllib.request.urlopen(self.flux.metrics_url("kustomize-controller"), timeout=5) as r:
            text = r.read().decode()
        labels = f'kind="Kustomization",name="{self.name}",namespace="{self.namespace}"'
        pattern = rf"^gotk_reconcile_duration_seconds_count\{{{labels}\}} (\S+)$"
        found = re.search(pattern, text, re.MULTILINE)
        return int(float(found.group(1))) if found else 0


def cluster_ready(body: dict[str, Any]) -> bool:
    """Ready=True for the cluster's current generation."""
    cond = condition(body, "Ready")
    current = cond.get("observedGeneration") == body["metadata"]["generation"]
    return cond.get("status") == "True" and current


__all__ = ["CLUSTER", "GROUP", "IMAGE", "PLURAL", "VERSION", "GitOps", "aidbox_files"]
