"""Checks shared by the hostile-input corpus (tests/integration/test_hostile_*.py).

Every case ends with the same two promises checked on the real API server:
- nothing the cluster under test does not own changed: resourceVersions of every object in
  the namespace (pods by uid) that is not the cluster's own, before and after;
- a running workload was not disturbed: the cluster's Deployment generation and pod template,
  its ReplicaSets, pods and ready endpoints are the same as before the hostile input.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

from helpers import wait_for
from kube_helpers import (
    GROUP,
    PLURAL,
    VERSION,
    cluster_manifest,
    condition,
    events_for,
    get_cluster,
    namespace_lifetime,
    operator_wrote_status,
    ready_endpoints,
)
from operator_process import OperatorProcess

PREFIX = "hx-"
ADOPT = "aidbox.io/adopt"
PRIVATE = "BOX_SECURITY_AUTH_KEYS_PRIVATE"
PUBLIC = "BOX_SECURITY_AUTH_KEYS_PUBLIC"
SM_GROUP, SM_VERSION, SM_PLURAL = "monitoring.coreos.com", "v1", "servicemonitors"
ObjectKey = tuple[str, str]  # (kind, name)
Snapshot = dict[ObjectKey, str]


@contextmanager
def temporary_namespace(api: client.ApiClient, slug: str) -> Iterator[str]:
    """A namespace the corpus' own operator watches (hx-*), deleted afterwards."""
    yield from namespace_lifetime(api, f"{PREFIX}{slug}-{secrets.token_hex(3)}")


def has_service_monitor_kind(api: client.ApiClient) -> bool:
    try:
        client.ApiextensionsV1Api(api).read_custom_resource_definition(f"{SM_PLURAL}.{SM_GROUP}")
        return True
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise


# -- what exists in a namespace ------------------------------------------------------------
def _listers(api: client.ApiClient) -> list[tuple[str, Callable[[str], Any]]]:
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    return [
        ("Deployment", apps.list_namespaced_deployment),
        ("ReplicaSet", apps.list_namespaced_replica_set),
        ("Service", core.list_namespaced_service),
        ("PodDisruptionBudget", client.PolicyV1Api(api).list_namespaced_pod_disruption_budget),
        ("Secret", core.list_namespaced_secret),
        ("ConfigMap", core.list_namespaced_config_map),
        ("ServiceAccount", core.list_namespaced_service_account),
        ("EndpointSlice", client.DiscoveryV1Api(api).list_namespaced_endpoint_slice),
        ("Pod", core.list_namespaced_pod),
    ]


def _objects(api: client.ApiClient, ns: str) -> list[tuple[str, str, str, str, set[str]]]:
    """(kind, name, uid, version, owner uids) of everything in the namespace."""
    found = []
    for kind, lister in _listers(api):
        for item in lister(ns).items:
            meta = item.metadata
            # A pod's status is written by the kubelet; its uid says whether it was replaced.
            version = meta.uid if kind == "Pod" else meta.resource_version
            owners = {r.uid for r in meta.owner_references or []}
            found.append((kind, meta.name, meta.uid, version, owners))
    if has_service_monitor_kind(api):
        items = client.CustomObjectsApi(api).list_namespaced_custom_object(
            SM_GROUP, SM_VERSION, ns, SM_PLURAL
        )["items"]
        for item in items:
            meta = item["metadata"]
            owners = {r["uid"] for r in meta.get("ownerReferences") or []}
            found.append(
                ("ServiceMonitor", meta["name"], meta["uid"], meta["resourceVersion"], owners)
            )
    return found


def snapshot(api: client.ApiClient, ns: str, excluded_owners: set[str]) -> Snapshot:
    """Versions of every object not (transitively) owned by one of `excluded_owners`."""
    objects = _objects(api, ns)
    excluded = set(excluded_owners)
    grew = True
    while grew:
        grew = False
        for _, _, uid, _, owners in objects:
            if uid not in excluded and owners & excluded:
                excluded.add(uid)
                grew = True
    return {(kind, name): version for kind, name, uid, version, _ in objects if uid not in excluded}


def settled_snapshot(api: client.ApiClient, ns: str, excluded_owners: set[str]) -> Snapshot:
    """A snapshot that stays the same across a second look: controllers have finished
    writing status (so a later difference is a change, not a late status update)."""
    last: dict[str, Snapshot] = {}

    def stable() -> Snapshot | None:
        now = snapshot(api, ns, excluded_owners)
        before, last["s"] = last.get("s"), now
        return now if now == before else None

    return wait_for(stable, timeout=30, interval=1.0, message=f"objects in {ns} to settle")


def assert_unchanged(
    api: client.ApiClient,
    ns: str,
    before: Snapshot,
    excluded_owners: set[str],
    released: set[ObjectKey] | frozenset[ObjectKey] = frozenset(),
) -> None:
    """No object outside the excluded owners' changed, vanished or appeared (except those the
    test itself deleted or handed over: `released`)."""

    def differences() -> str:
        now = snapshot(api, ns, excluded_owners)
        changed = sorted(k for k in before if k in now and now[k] != before[k])
        gone = sorted(k for k in before if k not in now)
        appeared = sorted(k for k in now if k not in before)
        changed, gone, appeared = (
            [k for k in ks if k not in released] for ks in (changed, gone, appeared)
        )
        if not (changed or gone or appeared):
            return ""
        # Gone from the unowned objects but still there: it now belongs to a cluster under test.
        everything = snapshot(api, ns, set())
        taken = [k for k in gone if k in everything]
        deleted = [k for k in gone if k not in everything]
        return f"changed {changed}, taken over {taken}, deleted {deleted}, new unowned {appeared}"

    # One listing per kind is not atomic: an object made between two listings (a new pod of
    # a new ReplicaSet) can look unowned once. A real change persists: look a few times.
    last = {"text": ""}

    def clean() -> bool:
        last["text"] = differences()
        return not last["text"]

    try:
        wait_for(clean, timeout=10, interval=0.5, message="no foreign object touched")
    except AssertionError:
        raise AssertionError(
            f"objects the cluster does not own were touched in {ns}: {last['text']}"
        ) from None


@dataclass(frozen=True)
class Workload:
    generation: int
    template: str
    replica_sets: frozenset[str]
    pods: frozenset[str]
    endpoints: frozenset[str]


def workload(api: client.ApiClient, name: str, ns: str) -> Workload:
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    dep = apps.read_namespaced_deployment(name, ns)
    selector = f"app.kubernetes.io/name=aidbox,app.kubernetes.io/instance={name}"
    replica_sets = apps.list_namespaced_replica_set(ns, label_selector=selector).items
    pods = core.list_namespaced_pod(ns, label_selector=selector).items
    template = api.sanitize_for_serialization(dep.spec.template)
    return Workload(
        generation=dep.metadata.generation,
        template=json.dumps(template, sort_keys=True),
        replica_sets=frozenset(r.metadata.name for r in replica_sets),
        pods=frozenset(p.metadata.uid for p in pods),
        endpoints=frozenset(ready_endpoints(api, name, ns)),
    )


def assert_undisturbed(api: client.ApiClient, name: str, ns: str, before: Workload) -> None:
    now = workload(api, name, ns)
    assert now.generation == before.generation, "the Deployment was written"
    assert now.template == before.template, "the pod template changed"
    assert now.replica_sets == before.replica_sets, "ReplicaSets changed"
    assert now.pods == before.pods, "pods were replaced"
    assert now.endpoints == before.endpoints, "ready endpoints changed"


# -- the cluster's side ------------------------------------------------------------------
def new_cluster(
    api: client.ApiClient,
    name: str,
    ns: str,
    spec: dict[str, Any],
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    body = cluster_manifest(name, ns, **spec)
    if annotations:
        body["metadata"]["annotations"] = annotations
    created: dict[str, Any] = client.CustomObjectsApi(api).create_namespaced_custom_object(
        GROUP, VERSION, ns, PLURAL, body
    )
    return created


def make_user_config(
    api: client.ApiClient,
    name: str,
    ns: str,
    config: dict[str, str] | None = None,
    secret: dict[str, str] | None = None,
) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map(
        ns,
        client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name=name), data={"BOX_ID": name, **(config or {})}
        ),
    )
    core.create_namespaced_secret(
        ns,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name=name),
            string_data={"BOX_ADMIN_PASSWORD": "test-only-password", **(secret or {})},
        ),
    )


def wait_reason(
    api: client.ApiClient,
    name: str,
    ns: str,
    reason: str,
    type_: str = "Degraded",
    timeout: float = 30,
) -> dict[str, Any]:
    """The cluster with condition `type_`=True for `reason` (at any observedGeneration)."""

    def check() -> dict[str, Any] | None:
        body = get_cluster(api, name, ns)
        cond = condition(body, type_)
        return body if cond.get("status") == "True" and cond.get("reason") == reason else None

    try:
        return wait_for(check, timeout=timeout, message=f"{ns}/{name} {type_}=True ({reason})")
    except AssertionError as err:
        raise AssertionError(f"{err}\n{describe(api, name, ns)}") from None


def describe(api: client.ApiClient, name: str, ns: str) -> str:
    """What the operator made of the cluster, for a failure message."""
    body = get_cluster(api, name, ns)
    status = body.get("status") or {}
    lines = [
        f"generation {body['metadata'].get('generation')}, observedGeneration "
        f"{status.get('observedGeneration')}, phase {status.get('phase')!r}"
    ]
    lines += [
        f"  {c['type']}={c['status']} {c.get('reason')}: {c.get('message', '')[:300]}"
        for c in status.get("conditions") or []
    ]
    lines += [f"  event {e.type} {e.reason}: {e.message[:300]}" for e in events_for(api, name, ns)]
    return "\n".join(lines)


def warnings(api: client.ApiClient, name: str, ns: str) -> list[str]:
    return sorted(e.reason for e in events_for(api, name, ns) if e.type == "Warning")


def normal_events(api: client.ApiClient, name: str, ns: str) -> list[str]:
    return sorted(e.reason for e in events_for(api, name, ns) if e.type == "Normal")


def api_message(exc: ApiException) -> str:
    try:
        return str(json.loads(exc.body)["message"])
    except (TypeError, ValueError, KeyError):
        return str(exc.body)


def blocked_passes(op: OperatorProcess) -> float:
    return op.metrics().get('aidbox_operator_reconciles_total{result="blocked"}', 0.0)


def wait_blocked_passes(op: OperatorProcess, since: float, count: int, timeout: float) -> None:
    """Wait until the operator has made `count` more blocked passes (retries) than `since`."""
    wait_for(
        lambda: blocked_passes(op) >= since + count,
        timeout=timeout,
        interval=0.25,
        message=f"{count} more blocked reconcile passes",
    )


def probe_operator(api: client.ApiClient, op: OperatorProcess) -> None:
    """The operator serves new hx-* namespaces (its informers list after the health endpoint
    answers)."""
    with temporary_namespace(api, "probe") as ns:
        new_cluster(api, "probe", ns, {})
        wait_for(
            lambda: operator_wrote_status(get_cluster(api, "probe", ns)),
            timeout=120,
            message=f"the hostile-corpus operator serving {ns}; log:\n{op.log_tail()}",
        )


def dependents(api: client.ApiClient, ns: str, uids: set[str]) -> set[ObjectKey]:
    """Objects (transitively) owned by `uids`: what deleting those takes with it."""
    objects = _objects(api, ns)
    owned = set(uids)
    grew = True
    while grew:
        grew = False
        for _, _, uid, _, owners in objects:
            if uid not in owned and owners & owned:
                owned.add(uid)
                grew = True
    return {(kind, name) for kind, name, uid, _, _ in objects if uid in owned}


def saw_retries(op: OperatorProcess, since: float, count: int, timeout: float) -> bool:
    """Whether the operator made `count` more blocked passes than `since` within `timeout`.
    A batch fixture records this instead of failing, so that each case reports on its own."""
    try:
        wait_blocked_passes(op, since, count, timeout)
    except AssertionError:
        return False
    return True


def wait_looked_at(api: client.ApiClient, names: list[str], ns: str, timeout: float = 30) -> bool:
    """Whether the operator wrote a status (whatever it says) for every cluster in time.
    Best effort for batch fixtures: a cluster without status fails its own case."""
    try:
        wait_for(
            lambda: all(
                (get_cluster(api, name, ns).get("status") or {}).get("conditions") for name in names
            ),
            timeout=timeout,
            interval=0.5,
            message=f"a status on every cluster in {ns}",
        )
    except AssertionError:
        return False
    return True
