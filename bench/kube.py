"""A small synchronous Kubernetes client for the benchmark: raw JSON requests and watches.

The typed client deserializes every object into models, which costs more CPU than the
benchmark can spare on two cores; this talks JSON through the same urllib3 pool instead.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import urllib3
from kubernetes import client, config

USER_AGENT = "aidbox-bench/1"
APPLY_PATCH = "application/apply-patch+yaml"
MERGE_PATCH = "application/merge-patch+json"

# (apiVersion, kind) -> (path prefix, plural, namespaced)
KINDS: dict[tuple[str, str], tuple[str, str, bool]] = {
    ("v1", "Namespace"): ("/api/v1", "namespaces", False),
    ("v1", "ConfigMap"): ("/api/v1", "configmaps", True),
    ("v1", "Secret"): ("/api/v1", "secrets", True),
    ("v1", "Service"): ("/api/v1", "services", True),
    ("v1", "Pod"): ("/api/v1", "pods", True),
    ("v1", "ServiceAccount"): ("/api/v1", "serviceaccounts", True),
    ("apps/v1", "Deployment"): ("/apis/apps/v1", "deployments", True),
    ("apps/v1", "ReplicaSet"): ("/apis/apps/v1", "replicasets", True),
    ("policy/v1", "PodDisruptionBudget"): ("/apis/policy/v1", "poddisruptionbudgets", True),
    ("aidbox.io/v1alpha1", "AidboxCluster"): ("/apis/aidbox.io/v1alpha1", "aidboxclusters", True),
    ("aidbox.io/v1alpha1", "AidboxReleaseChannel"): (
        "/apis/aidbox.io/v1alpha1",
        "aidboxreleasechannels",
        False,
    ),
    ("apiextensions.k8s.io/v1", "CustomResourceDefinition"): (
        "/apis/apiextensions.k8s.io/v1",
        "customresourcedefinitions",
        False,
    ),
}
BY_KIND = {kind: key for key, kind in ((k, k[1]) for k in KINDS)}


def path(kind: str, namespace: str | None = None, name: str | None = None) -> str:
    prefix, plural, namespaced = KINDS[BY_KIND[kind]]
    out = prefix
    if namespaced and namespace:
        out += f"/namespaces/{namespace}"
    out += f"/{plural}"
    if name:
        out += f"/{name}"
    return out


def manifest_path(manifest: dict[str, Any]) -> str:
    meta = manifest["metadata"]
    return path(manifest["kind"], meta.get("namespace"), meta["name"])


class ApiError(Exception):
    def __init__(self, status: int, method: str, url: str, body: bytes) -> None:
        super().__init__(f"{method} {url}: HTTP {status}: {body[:300]!r}")
        self.status = status


class Kube:
    def __init__(self, kubeconfig: Path, pool_size: int = 64) -> None:
        cfg = client.Configuration()
        config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=str(kubeconfig), client_configuration=cfg
        )
        cfg.connection_pool_maxsize = pool_size
        self.api = client.ApiClient(cfg)
        self.host = cfg.host
        self.pool = self.api.rest_client.pool_manager

    def close(self) -> None:
        self.api.close()  # type: ignore[no-untyped-call]

    def request(
        self,
        method: str,
        url_path: str,
        body: Any = None,
        query: dict[str, str] | None = None,
        content_type: str = "application/json",
        ok_missing: bool = False,
        timeout: float = 60,
    ) -> dict[str, Any]:
        url = self.host + url_path + ("?" + urlencode(query) if query else "")
        headers = {
            "Accept": "application/json",
            "Content-Type": content_type,
            "User-Agent": USER_AGENT,
        }
        data = None if body is None else json.dumps(body).encode()
        resp = self.pool.request(
            method,
            url,
            body=data,
            headers=headers,
            timeout=urllib3.Timeout(connect=10, read=timeout),
            retries=False,
        )
        if resp.status == 404 and ok_missing:
            return {}
        if resp.status >= 400:
            raise ApiError(resp.status, method, url, resp.data)
        return json.loads(resp.data) if resp.data else {}

    # -- conveniences
    def create(self, manifest: dict[str, Any]) -> dict[str, Any]:
        meta = manifest["metadata"]
        return self.request("POST", path(manifest["kind"], meta.get("namespace")), manifest)

    def apply(self, manifest: dict[str, Any], manager: str) -> dict[str, Any]:
        return self.request(
            "PATCH",
            manifest_path(manifest),
            manifest,
            query={"fieldManager": manager, "force": "true"},
            content_type=APPLY_PATCH,
        )

    def get(self, kind: str, namespace: str | None, name: str) -> dict[str, Any]:
        return self.request("GET", path(kind, namespace, name), ok_missing=True)

    def delete(self, kind: str, namespace: str | None, name: str) -> None:
        self.request("DELETE", path(kind, namespace, name), ok_missing=True)

    def merge_patch(self, kind: str, namespace: str | None, name: str, patch: Any) -> None:
        self.request("PATCH", path(kind, namespace, name), patch, content_type=MERGE_PATCH)

    def list(self, kind: str, namespace: str | None = None) -> dict[str, Any]:
        return self.request("GET", path(kind, namespace), timeout=120)


Key = tuple[str, str]


def key_of(obj: dict[str, Any]) -> Key:
    meta = obj["metadata"]
    return (meta.get("namespace", ""), meta["name"])


class Watcher(threading.Thread):
    """Lists then watches one kind at cluster scope, keeping a cache of the objects.

    Every event (the initial list counts as ADDED) is passed to `on_event(type, obj, t)` with
    t = time.monotonic() when the event was read, and wakes up `wait()`ers.
    """

    def __init__(
        self,
        kube: Kube,
        kind: str,
        on_event: Callable[[str, dict[str, Any], float], None] | None = None,
        namespace_prefix: str = "",
    ) -> None:
        super().__init__(daemon=True, name=f"watch-{kind}")
        self.kube = kube
        self.kind = kind
        self.on_event = on_event
        self.prefix = namespace_prefix
        self.objects: dict[Key, dict[str, Any]] = {}
        self.seen_at: dict[Key, float] = {}
        self.cond = threading.Condition()
        self.synced = threading.Event()
        self.stopping = False
        self.events = 0

    def _handle(self, etype: str, obj: dict[str, Any], t: float) -> None:
        key = key_of(obj)
        if self.prefix and not key[0].startswith(self.prefix):
            return
        with self.cond:
            self.events += 1
            if etype == "DELETED":
                self.objects.pop(key, None)
            else:
                self.objects[key] = obj
            self.seen_at[key] = t
            if self.on_event is not None:
                self.on_event(etype, obj, t)
            self.cond.notify_all()

    def run(self) -> None:
        while not self.stopping:
            try:
                listing = self.kube.list(self.kind)
                t = time.monotonic()
                for item in listing.get("items", []):
                    self._handle("ADDED", item, t)
                rv = listing["metadata"]["resourceVersion"]
                self.synced.set()
                while not self.stopping and rv:
                    rv = self._watch(rv)
            except Exception as exc:  # keep watching whatever happens; report it
                if not self.stopping:
                    print(f"[watch {self.kind}] {exc!r}; relisting", flush=True)
                    time.sleep(0.5)

    def _watch(self, rv: str) -> str:
        """One watch request; returns the resourceVersion to continue from, '' to relist."""
        query = {
            "watch": "1",
            "resourceVersion": rv,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": "20",
        }
        url = self.kube.host + path(self.kind) + "?" + urlencode(query)
        resp = self.kube.pool.request(
            "GET",
            url,
            headers={"Accept": "application/json", "User-Agent": USER_AGENT},
            preload_content=False,
            timeout=urllib3.Timeout(connect=10, read=60),
            retries=False,
        )
        try:
            if resp.status >= 400:
                return ""
            buf = b""
            for chunk in resp.stream(1 << 16):
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    t = time.monotonic()
                    etype, obj = event["type"], event["object"]
                    if etype == "ERROR":
                        return ""  # 410 Gone and friends: relist
                    rv = obj.get("metadata", {}).get("resourceVersion", rv)
                    if etype != "BOOKMARK":
                        self._handle(etype, obj, t)
        finally:
            resp.release_conn()
        return rv

    def wait(self, predicate: Callable[[], Any], timeout: float) -> Any:
        """Wait until predicate() (called under the lock) is truthy; returns it, or None."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                value = predicate()
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(min(left, 1.0))

    def stop(self) -> None:
        self.stopping = True
