"""An in-memory Kubernetes API for unit tests of the reconcile core (plain Python, no network).

It answers the operator's KubeClient requests (GET, POST, server-side apply, merge patch, PUT,
DELETE) with the API server's status codes, keeps uids, resourceVersions and generations, and
lets a test refuse requests or play the Deployment controller. `Harness` feeds what the API
holds into a real Controller as its watches would.
"""

from __future__ import annotations

import copy
import itertools
import json
import re
from collections import Counter
from collections.abc import Callable
from typing import Any

from aidbox_operator.model.constants import (
    FIELD_MANAGER,
    INSTANCE_LABEL,
    MANAGED_BY,
    MANAGED_BY_LABEL,
)
from aidbox_operator.reconcile.controller import Controller
from aidbox_operator.reconcile.feeds import ChannelFeed, ChildFeed, ClusterFeed, PodFeed
from aidbox_operator.reconcile.kinds import CHILDREN
from aidbox_operator.runtime.client import ApiError, KubeClient

KINDS = {
    "deployments": "Deployment",
    "services": "Service",
    "poddisruptionbudgets": "PodDisruptionBudget",
    "servicemonitors": "ServiceMonitor",
    "ingresses": "Ingress",
    "httproutes": "HTTPRoute",
    "horizontalpodautoscalers": "HorizontalPodAutoscaler",
    "networkpolicies": "NetworkPolicy",
    "secrets": "Secret",
    "configmaps": "ConfigMap",
    "pods": "Pod",
    "events": "Event",
    "aidboxclusters": "AidboxCluster",
    "aidboxreleasechannels": "AidboxReleaseChannel",
    "leases": "Lease",
}
API_VERSIONS = {
    "Deployment": "apps/v1",
    "PodDisruptionBudget": "policy/v1",
    "ServiceMonitor": "monitoring.coreos.com/v1",
    "Ingress": "networking.k8s.io/v1",
    "HTTPRoute": "gateway.networking.k8s.io/v1",
    "HorizontalPodAutoscaler": "autoscaling/v2",
    "NetworkPolicy": "networking.k8s.io/v1",
    "AidboxCluster": "aidbox.io/v1alpha1",
    "AidboxReleaseChannel": "aidbox.io/v1alpha1",
    "Lease": "coordination.k8s.io/v1",
}
_PATH = re.compile(
    r"^/(?:api/v1|apis/[^/]+/[^/]+)(?:/namespaces/(?P<ns>[^/]+))?/(?P<plural>[^/]+)"
    r"(?:/(?P<name>[^/]+))?(?:/(?P<sub>status))?$"
)
ObjKey = tuple[str, str, str]  # (kind, namespace, name)
Refusal = Callable[[str, str, dict[str, Any] | None], ApiError | None]


def _merge(into: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    for key, value in patch.items():
        if value is None:
            into.pop(key, None)
        elif isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = copy.deepcopy(value)
    return into


class FakeKube(KubeClient):
    def __init__(self) -> None:  # no ApiClient: nothing leaves the process
        self.field_manager = FIELD_MANAGER
        self.requests: Counter[str] = Counter()
        self.objects: dict[ObjKey, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self.log: list[tuple[str, str]] = []  # (verb, path) of every request
        self._ids = itertools.count(1)
        # Called before every request with (verb, kind, body); an ApiError it returns is raised.
        self.refuse: Refusal = lambda verb, kind, body: None
        self.crd_missing: set[str] = set()

    async def close(self) -> None:
        return None

    # -- test-side helpers -----------------------------------------------------------------
    def put(self, body: dict[str, Any], manager: str = "kubectl") -> dict[str, Any]:
        """Create or replace an object as someone else would (not the operator)."""
        body = copy.deepcopy(body)
        kind, meta = body["kind"], body["metadata"]
        meta.setdefault("namespace", "default")
        key = (kind, meta["namespace"], meta["name"])
        old = self.objects.get(key)
        meta.setdefault("uid", old["metadata"]["uid"] if old else f"uid-{next(self._ids)}")
        meta["generation"] = (old or {}).get("metadata", {}).get("generation", 0) + 1
        meta["resourceVersion"] = str(next(self._ids))
        meta["managedFields"] = [{"manager": manager, "operation": "Update", "time": self._now()}]
        body.setdefault("apiVersion", API_VERSIONS.get(kind, "v1"))
        self.objects[key] = body
        return copy.deepcopy(body)

    def get_object(self, kind: str, name: str, namespace: str = "default") -> dict[str, Any] | None:
        body = self.objects.get((kind, namespace, name))
        return copy.deepcopy(body) if body else None

    def writes(self) -> int:
        return sum(n for verb, n in self.requests.items() if verb not in ("get", "list"))

    def _now(self) -> str:
        return f"2026-01-01T00:00:{next(self._ids) % 60:02d}Z"

    # -- the API ---------------------------------------------------------------------------
    async def request(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, Any] | None = None,
        body: Any = None,
        content_type: str | None = None,
        verb: str | None = None,
    ) -> dict[str, Any]:
        verb = verb or method.lower()
        self.requests[verb] += 1
        self.log.append((verb, path))
        match = _PATH.match(path.split("?")[0])
        assert match, path
        kind = KINDS[match["plural"]]
        if kind in self.crd_missing:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if refused := self.refuse(verb, kind, body):
            raise refused
        key = (kind, match["ns"] or "", match["name"] or "")
        manager = (query or {}).get("fieldManager", FIELD_MANAGER)
        if content_type == "application/apply-patch+yaml" and manager != FIELD_MANAGER:
            return copy.deepcopy(self._apply_as(key, body, manager))
        handler = getattr(self, f"_{method.lower()}")
        result: dict[str, Any] = handler(key, body, content_type, match["sub"])
        return copy.deepcopy(result)

    def _missing(self, key: ObjKey) -> ApiError:
        return ApiError(404, "NotFound", f'{key[0].lower()}s "{key[2]}" not found')

    def _get(self, key: ObjKey, *_: Any) -> dict[str, Any]:
        if key not in self.objects:
            raise self._missing(key)
        return self.objects[key]

    def _post(self, key: ObjKey, body: dict[str, Any], *_: Any) -> dict[str, Any]:
        if key[0] == "Event":
            self.events.append(copy.deepcopy(body))
            return body
        name = body["metadata"]["name"]
        if (key[0], key[1], name) in self.objects:
            raise ApiError(409, "AlreadyExists", f'{key[0].lower()}s "{name}" already exists')
        stored = self.put({**body, "kind": key[0]}, manager=FIELD_MANAGER)
        return stored

    def _patch(
        self, key: ObjKey, body: dict[str, Any], content_type: str | None, sub: str | None
    ) -> dict[str, Any]:
        if content_type == "application/apply-patch+yaml":
            return self._apply(key, body)
        if key not in self.objects:
            raise self._missing(key)
        current = self.objects[key]
        if sub == "status":
            # A merge patch, as the API server applies it: keys it does not name stay.
            current["status"] = _merge(current.get("status") or {}, body["status"])
        elif content_type == "application/json-patch+json":
            self._json_patch(current, body)
        else:
            _merge(current, body)
        current["metadata"]["resourceVersion"] = str(next(self._ids))
        return current

    @staticmethod
    def _json_patch(current: dict[str, Any], operations: list[dict[str, Any]]) -> None:
        """The operations the operator sends: test, replace, add and remove."""
        for op in operations:
            parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
            *parents, last = parts
            target = current
            for part in parents:
                target = target[part]
            if op["op"] == "test" and target.get(last) != op["value"]:
                raise ApiError(422, "Invalid", f"test operation failed for {op['path']}")
            if op["op"] in ("replace", "add"):
                target[last] = copy.deepcopy(op["value"])
            if op["op"] == "remove":
                if last not in target:
                    raise ApiError(422, "Invalid", f"remove of a missing {op['path']}")
                del target[last]

    def _apply(self, key: ObjKey, manifest: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply with force, reduced to what the operator relies on: its fields
        replace what it applied before; status and other managers' metadata stay. A
        resourceVersion in the manifest is a precondition on an existing object (409 when it
        differs) and is ignored when the apply creates one, as the API server does."""
        current = self.objects.get(key)
        if current is None:
            return self.put(manifest, manager=FIELD_MANAGER)
        wanted = manifest["metadata"].get("resourceVersion")
        if wanted is not None and wanted != current["metadata"]["resourceVersion"]:
            raise ApiError(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on {key[0].lower()}s "{key[2]}": the object has '
                "been modified; please apply your changes to the latest version and try again",
            )
        merged = copy.deepcopy(manifest)
        self._kept_replicas(current, merged)
        merged["metadata"] = {**current["metadata"], **copy.deepcopy(manifest["metadata"])}
        if "status" in current:
            merged["status"] = current["status"]
        if json.dumps(current.get("spec"), sort_keys=True) != json.dumps(
            merged.get("spec"), sort_keys=True
        ):
            merged["metadata"]["generation"] = current["metadata"].get("generation", 1) + 1
        merged["metadata"]["resourceVersion"] = str(next(self._ids))
        others = [
            m for m in current["metadata"].get("managedFields", []) if m["manager"] != FIELD_MANAGER
        ]
        merged["metadata"]["managedFields"] = [
            *others,
            {"manager": FIELD_MANAGER, "operation": "Apply", "time": self._now()},
        ]
        self.objects[key] = merged
        return merged

    def _apply_as(self, key: ObjKey, manifest: dict[str, Any], manager: str) -> dict[str, Any]:
        """An apply of a few fields by another field manager (the replicas hand-over): merged
        into the existing object, that manager recorded as an owner."""
        if key not in self.objects:
            raise self._missing(key)
        current = self.objects[key]
        before = json.dumps(current.get("spec"), sort_keys=True)
        _merge(current.setdefault("spec", {}), manifest.get("spec") or {})
        if json.dumps(current["spec"], sort_keys=True) != before:
            current["metadata"]["generation"] = current["metadata"].get("generation", 1) + 1
        current["metadata"]["resourceVersion"] = str(next(self._ids))
        fields = current["metadata"].setdefault("managedFields", [])
        fields.append({"manager": manager, "operation": "Apply", "time": self._now()})
        return current

    @staticmethod
    def _kept_replicas(current: dict[str, Any], merged: dict[str, Any]) -> None:
        """A Deployment apply without replicas: they stay while another manager owns them (an
        HPA, the hand-over); with the operator their only owner they go, and the API server
        defaults them to 1."""
        if current.get("kind") != "Deployment" or "replicas" in merged.get("spec", {}):
            return
        others = [
            m for m in current["metadata"].get("managedFields", []) if m["manager"] != FIELD_MANAGER
        ]
        replicas = current.get("spec", {}).get("replicas", 1) if others else 1
        merged.setdefault("spec", {})["replicas"] = replicas

    def _put(self, key: ObjKey, body: dict[str, Any], *_: Any) -> dict[str, Any]:
        if key not in self.objects:
            raise self._missing(key)
        return self.put(body, manager=FIELD_MANAGER)

    def _delete(self, key: ObjKey, body: dict[str, Any] | None, *_: Any) -> dict[str, Any]:
        if key not in self.objects:
            raise self._missing(key)
        uid = ((body or {}).get("preconditions") or {}).get("uid")
        if uid and self.objects[key]["metadata"].get("uid") != uid:
            raise ApiError(409, "Conflict", "Precondition failed: UID in precondition")
        return self.objects.pop(key)


class Harness:
    """A real Controller on a FakeKube, fed as its watches would feed it."""

    def __init__(self, resolver: Any = None) -> None:
        self.api = FakeKube()
        self.resolver = resolver
        self.controller = Controller(self.api, workers=1, resolver=resolver)
        self._seen: dict[ObjKey, str] = {}
        self._last: dict[ObjKey, dict[str, Any]] = {}

    def sync(self) -> None:
        """Deliver a watch event for every object that changed or went away."""
        current = {k: v["metadata"]["resourceVersion"] for k, v in self.api.objects.items()}
        for key, body in list(self.api.objects.items()):
            if self._seen.get(key) != current[key]:
                self._deliver(None, copy.deepcopy(body))
        for key in set(self._seen) - set(current):
            kind, namespace, name = key
            stub = {"kind": kind, "metadata": {"namespace": namespace, "name": name}}
            gone = self._last.get(key, stub)
            self._deliver("DELETED", gone)
        self._last = {k: copy.deepcopy(v) for k, v in self.api.objects.items()}
        self._seen = current

    def _deliver(self, event: str | None, body: dict[str, Any]) -> None:
        kind = body["kind"]
        owned = (body["metadata"].get("labels") or {}).get(MANAGED_BY_LABEL) == MANAGED_BY
        # Feeds of the current controller (a test may replace it, as a restart does).
        store, queue = self.controller.store, self.controller.queue
        children = {k.kind: ChildFeed(store, queue, k) for k in CHILDREN}
        if kind == "AidboxCluster":
            ClusterFeed(store, queue, self.controller.forget).event(event or "ADDED", body)
        elif kind == "AidboxReleaseChannel":
            ChannelFeed(store, queue, self.controller.forget).event(event or "ADDED", body)
        elif kind in ("ConfigMap", "Secret"):
            # As the config feed does: summaries of referenced objects, read in full, and the
            # names of Secrets that could be keys Secrets.
            meta = body["metadata"]
            ref = (kind, meta["namespace"], meta["name"])
            if kind == "Secret":
                store.saw_secret(meta["namespace"], meta["name"], event != "DELETED")
            if store.is_referenced(*ref) and store.put_config(
                *ref, None if event == "DELETED" else body
            ):
                for cluster in sorted(store.references.get(ref, ())):
                    self.controller.queue.add(cluster)
        elif kind == "Pod" and owned:
            PodFeed(store, queue).event(event or "ADDED", body)
        elif kind in children and owned:
            children[kind].event(event or "ADDED", body)

    async def reconcile(self, name: str = "aidbox", namespace: str = "default") -> Any:
        self.sync()
        result = await self.controller.reconciler.reconcile((namespace, name))
        await self.controller.recorder.drain()
        self.sync()
        return result

    def cluster(
        self, name: str = "aidbox", labels: dict[str, str] | None = None, **spec: Any
    ) -> dict[str, Any]:
        body = {
            "apiVersion": "aidbox.io/v1alpha1",
            "kind": "AidboxCluster",
            "metadata": {"name": name, "namespace": "default", "labels": labels or {}},
            "spec": spec,
        }
        return self.api.put(body)

    def channel(self, name: str, **spec: Any) -> dict[str, Any]:
        """An AidboxReleaseChannel (cluster-scoped: no namespace)."""
        body = {
            "apiVersion": "aidbox.io/v1alpha1",
            "kind": "AidboxReleaseChannel",
            "metadata": {"name": name, "namespace": ""},
            "spec": spec,
        }
        return self.api.put(body)

    async def reconcile_channel(self, name: str) -> Any:
        self.sync()
        result = await self.controller.channels.reconcile(name)
        await self.controller.recorder.drain()
        self.sync()
        return result

    def update_spec(self, name: str = "aidbox", **spec: Any) -> None:
        body = self.api.objects[("AidboxCluster", "default", name)]
        body["spec"] = {**body.get("spec", {}), **spec}
        body["metadata"]["generation"] += 1
        body["metadata"]["resourceVersion"] = str(next(self.api._ids))

    def config(self, kind: str, name: str, data: dict[str, str]) -> None:
        self.api.put({"kind": kind, "metadata": {"name": name}, "data": data})

    def status(self, name: str = "aidbox") -> dict[str, Any]:
        body = self.api.objects[("AidboxCluster", "default", name)]
        status: dict[str, Any] = body.get("status") or {}
        return status

    def condition(self, type_: str, name: str = "aidbox") -> dict[str, Any]:
        conds = {c["type"]: c for c in self.status(name).get("conditions", [])}
        return conds.get(type_, {})

    def roll_out(self, name: str = "aidbox", ready: bool = True) -> None:
        """Play the Deployment controller and kubelets: pods of the current template."""
        dep = self.api.objects[("Deployment", "default", name)]
        replicas = int(dep["spec"].get("replicas", 1))
        for key, body in list(self.api.objects.items()):
            labels = body["metadata"].get("labels") or {}
            if key[0] == "Pod" and labels.get(INSTANCE_LABEL) == name:
                del self.api.objects[key]
        for index in range(replicas):
            self.pod(f"{name}-{index}", ready=ready, name=name)
        dep["status"] = {
            "observedGeneration": dep["metadata"]["generation"],
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": replicas if ready else 0,
            "availableReplicas": replicas if ready else 0,
        }
        dep["metadata"]["resourceVersion"] = str(next(self.api._ids))

    def pod(
        self,
        pod_name: str,
        *,
        image: str | None = None,
        ready: bool = True,
        restarts: int = 0,
        exit_message: str = "",
        name: str = "aidbox",
    ) -> None:
        """One pod of the cluster: of the current template unless `image` says otherwise; a
        pod that restarted shows the termination message of its last run."""
        template = self.api.objects[("Deployment", "default", name)]["spec"]["template"]
        index = int(pod_name.rsplit("-", 1)[-1]) if pod_name[-1].isdigit() else 9
        container: dict[str, Any] = {"name": "main", "restartCount": restarts}
        if restarts:
            ended = {"exitCode": 1, "reason": "Error", "message": exit_message}
            container["lastState"] = {"terminated": ended}
            container["state"] = {"waiting": {"reason": "CrashLoopBackOff"}}
        self.api.put(
            {
                "kind": "Pod",
                "metadata": {"name": pod_name, "labels": {**template["metadata"]["labels"]}},
                "spec": {
                    "nodeName": f"node-{index}",
                    "containers": [
                        {
                            "name": "main",
                            "image": image or template["spec"]["containers"][0]["image"],
                        }
                    ],
                },
                "status": {
                    "phase": "Running",
                    "podIP": f"10.0.0.{index + 1}",
                    "conditions": [{"type": "Ready", "status": str(ready)}],
                    "containerStatuses": [container],
                },
            }
        )

    def deployment_status(self, name: str = "aidbox", **status: Any) -> None:
        """Play the Deployment controller's report (observedGeneration current)."""
        dep = self.api.objects[("Deployment", "default", name)]
        dep["status"] = {"observedGeneration": dep["metadata"]["generation"], **status}
        dep["metadata"]["resourceVersion"] = str(next(self.api._ids))

    def drop_pod(self, pod_name: str) -> None:
        del self.api.objects[("Pod", "default", pod_name)]

    def restart(self) -> None:
        """A new operator process: empty caches, the same API (status kept there)."""
        self.controller = Controller(self.api, workers=1, resolver=self.resolver)
        self._seen, self._last = {}, {}

    def deployment_observed(self, name: str = "aidbox") -> None:
        """Play the Deployment controller noticing the newest generation (pods unchanged)."""
        dep = self.api.objects[("Deployment", "default", name)]
        dep.setdefault("status", {})["observedGeneration"] = dep["metadata"]["generation"]
        dep["metadata"]["resourceVersion"] = str(next(self.api._ids))

    def annotate(self, annotations: dict[str, str], name: str = "aidbox") -> None:
        body = self.api.objects[("AidboxCluster", "default", name)]
        body["metadata"]["annotations"] = annotations
        body["metadata"]["resourceVersion"] = str(next(self.api._ids))

    def event_reasons(self) -> list[str]:
        return [e["reason"] for e in self.api.events]
