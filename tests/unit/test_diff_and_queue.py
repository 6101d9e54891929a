from __future__ import annotations

import asyncio

from aidbox_operator.render import config_hash
from aidbox_operator.runtime.diff import is_subset
from aidbox_operator.runtime.workqueue import WorkQueue


def test_subset_ignores_server_defaults() -> None:
    desired = {"spec": {"ports": [{"port": 80, "targetPort": "http"}]}}
    observed = {
        "spec": {
            "ports": [{"port": 80, "targetPort": "http", "protocol": "TCP"}],
            "clusterIP": "10.96.0.1",
        },
        "status": {},
    }
    assert is_subset(desired, observed)


def test_subset_sees_drift_and_removals_from_lists() -> None:
    desired = {"spec": {"containers": [{"image": "a:1"}]}}
    assert not is_subset(desired, {"spec": {"containers": [{"image": "a:2"}]}})
    assert not is_subset(desired, {"spec": {"containers": []}})
    assert not is_subset(desired, {"spec": {}})


def test_subset_compares_quantities_by_value() -> None:
    desired = {"resources": {"requests": {"cpu": "1000m", "memory": "1024Mi"}}}
    observed = {"resources": {"requests": {"cpu": "1", "memory": "1Gi"}}}
    assert is_subset(desired, observed)
    assert not is_subset(desired, {"resources": {"requests": {"cpu": "2", "memory": "1Gi"}}})
    # So does an emptyDir's size limit (a user's volume, passed through as written).
    volume = {"name": "v", "emptyDir": {"sizeLimit": "1024Mi"}}
    assert is_subset(volume, {"name": "v", "emptyDir": {"sizeLimit": "1Gi"}})
    # Outside those, strings are strings.
    assert not is_subset({"value": "1000m"}, {"value": "1"})


def test_config_hash_changes_with_content_and_existence() -> None:
    base = config_hash({"ConfigMap/a": "d1", "Secret/a": "d2"})
    assert base == config_hash({"Secret/a": "d2", "ConfigMap/a": "d1"})
    assert base != config_hash({"ConfigMap/a": "d1", "Secret/a": "d3"})
    assert base != config_hash({"ConfigMap/a": "d1", "Secret/a": None})


def test_work_queue_coalesces_and_never_runs_a_key_twice_at_once() -> None:
    async def scenario() -> list[str]:
        queue: WorkQueue[str] = WorkQueue()
        for _ in range(5):
            queue.add("a")
        queue.add("b")
        first = await queue.get()
        queue.add(first)  # event while working: runs again after done, not concurrently
        second = await queue.get()
        assert second != first
        queue.done(first)
        third = await queue.get()
        queue.done(second)
        queue.done(third)
        assert queue.idle
        return [first, second, third]

    assert asyncio.run(scenario()) == ["a", "b", "a"]
