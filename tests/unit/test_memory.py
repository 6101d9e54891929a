"""What the operator keeps per object, and how small: the compressed object cache, the store's
bookkeeping (references, key-name sets, names), what a watch holds between events, and the
process's large blocks. Every saving must read back exactly what was stored."""

from __future__ import annotations

import json
import sys
from typing import Any

import pytest

from aidbox_operator.reconcile.store import ObjectStore
from aidbox_operator.runtime.cache import MAX_SAMPLES, ObjectCache
from aidbox_operator.runtime.client import _complete_lines
from aidbox_operator.runtime.memory import return_large_blocks


def _deployment(name: str, version: str, status: bool = True) -> dict[str, Any]:
    labels = {"app.kubernetes.io/instance": name, "app.kubernetes.io/name": "aidbox"}
    body: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": "ns",
            "resourceVersion": version,
            "labels": labels,
            "managedFields": [{"manager": "aidbox-operator", "fieldsV1": {"f:spec": {}}}],
        },
        "spec": {"replicas": 2, "selector": {"matchLabels": labels}},
    }
    if status:
        body["status"] = {
            "observedGeneration": 1,
            "replicas": 2,
            "conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicas"}],
        }
    return body


def _without_managed_fields(body: dict[str, Any]) -> dict[str, Any]:
    meta = {k: v for k, v in body["metadata"].items() if k != "managedFields"}
    return {**body, "metadata": meta}


def test_objects_packed_against_a_sample_read_back_exactly() -> None:
    cache: ObjectCache[str] = ObjectCache()
    bodies = {f"c{i}": _deployment(f"c{i}", str(10 + i)) for i in range(20)}
    for key, body in bodies.items():
        cache.put(key, body)
    for key, body in bodies.items():
        assert cache.get(key) == _without_managed_fields(body)
    # Against the sample, an object of the same kind takes a fraction of its JSON text.
    text = len(json.dumps(_without_managed_fields(bodies["c7"]), separators=(",", ":")))
    assert len(cache._objects["c7"].data) < text / 4


def test_a_longer_object_becomes_the_sample_and_older_ones_still_read_back() -> None:
    cache: ObjectCache[str] = ObjectCache()
    young = _deployment("a", "1", status=False)  # just created: no status yet
    cache.put("a", young)
    first = cache._objects["a"].packer
    cache.put("b", _deployment("b", "2"))  # at rest, with its controller's status
    assert cache._objects["b"].packer is not first
    assert cache.get("a") == _without_managed_fields(young)
    assert cache.get("b") == _without_managed_fields(_deployment("b", "2"))


def test_samples_are_replaced_a_bounded_number_of_times() -> None:
    cache: ObjectCache[str] = ObjectCache()
    for i in range(3 * MAX_SAMPLES):
        body = _deployment("a", str(i + 1))
        body["spec"]["padding"] = "x" * (1000 * i)  # each one longer than the last
        cache.put(f"k{i}", body)
    assert cache._packers["Deployment"].samples == MAX_SAMPLES
    for i in range(3 * MAX_SAMPLES):
        stored = cache.get(f"k{i}")
        assert stored is not None and stored["spec"]["padding"] == "x" * (1000 * i)


def _refs(namespace: str, *names: str) -> set[tuple[str, str, str]]:
    return {("ConfigMap", namespace, n) for n in names}


def test_references_follow_changes_and_shared_objects() -> None:
    store = ObjectStore()
    store.set_references(("ns", "a"), _refs("ns", "shared", "a"))
    store.set_references(("ns", "b"), _refs("ns", "shared"))
    assert sorted(store.references[("ConfigMap", "ns", "shared")]) == [("ns", "a"), ("ns", "b")]
    store.set_references(("ns", "a"), _refs("ns", "a2"))
    assert store.references[("ConfigMap", "ns", "shared")] == (("ns", "b"),)
    assert not store.is_referenced("ConfigMap", "ns", "a")
    assert store.is_referenced("ConfigMap", "ns", "a2")
    store.set_references(("ns", "a"), _refs("ns", "a2"))  # unchanged: nothing moves
    assert store.references[("ConfigMap", "ns", "a2")] == (("ns", "a"),)
    store.set_references(("ns", "b"), set())
    store.set_references(("ns", "a"), set())
    assert store.references == {} and store._refs_of == {}


def _config(name: str, data: dict[str, str], owner: str = "") -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "ns", "resourceVersion": "5"}
    if owner:
        meta["ownerReferences"] = [{"uid": owner}]
    return {"metadata": meta, "data": data}


def test_equal_key_name_sets_are_kept_once() -> None:
    store = ObjectStore()
    for name in ("a", "b"):
        store.set_references(("ns", name), _refs("ns", name))
        store.put_config("ConfigMap", "ns", name, _config(name, {"X": "1", "Y": name}))
    a, b = store.configs[("ConfigMap", "ns", "a")], store.configs[("ConfigMap", "ns", "b")]
    assert a.keys == frozenset({"X", "Y"}) and a.keys is b.keys
    assert a.digest != b.digest and a.owner_uids == ()
    store.set_references(("ns", "k"), {("Secret", "ns", "k")})
    store.put_config("Secret", "ns", "k", _config("k", {"Z": "2"}, owner="uid-1"))
    assert store.configs[("Secret", "ns", "k")].owner_uids == ("uid-1",)


def _cluster(name: str) -> dict[str, Any]:
    return {"kind": "AidboxCluster", "metadata": {"namespace": "ns", "name": name}}


def test_names_of_deleted_clusters_are_forgotten() -> None:
    store = ObjectStore()
    for i in range(300):
        key = store.put_cluster(_cluster(f"c{i}"))
        store.set_references(key, _refs("ns", f"c{i}"))
    for i in range(299):
        store.drop_cluster(("ns", f"c{i}"))
    # The table was rebuilt from the keys still in use, and kept filling up to that point.
    assert {"ns", "c299", "ConfigMap"} <= set(store._names._table)
    assert len(store._names._table) < 300
    assert store.has_cluster(("ns", "c299")) and store.is_referenced("ConfigMap", "ns", "c299")


def test_a_cluster_key_is_made_of_one_copy_of_each_name() -> None:
    store = ObjectStore()
    name = "".join(["c", "42"])  # two equal strings that are distinct objects
    other = "".join(["c", "4", "2"])
    assert name == other and name is not other
    assert store.put_cluster(_cluster(name))[1] is store.put_cluster(_cluster(other))[1]


def test_watch_lines_split_across_chunks() -> None:
    pending = bytearray(b'{"type":"ADDED","object":{"a":1}}\n\n{"type":"MOD')
    assert list(_complete_lines(pending)) == [b'{"type":"ADDED","object":{"a":1}}']
    assert pending == bytearray(b'{"type":"MOD')
    pending += b'IFIED","object":{}}\n'
    assert list(_complete_lines(pending)) == [b'{"type":"MODIFIED","object":{}}']
    assert pending == bytearray()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_large_blocks_are_returned_to_the_system_on_linux() -> None:
    assert return_large_blocks()
