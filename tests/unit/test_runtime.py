"""The runtime's own rules: timers, resourceVersions, the object cache, backoff, workers, and
the feeds that write through store + queue."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from aidbox_operator.reconcile.controller import PROBLEM_RETRY_SECONDS, outcome_of
from aidbox_operator.reconcile.feeds import ClusterFeed
from aidbox_operator.reconcile.result import PassResult
from aidbox_operator.reconcile.store import Key, ObjectStore
from aidbox_operator.runtime import backoff as backoff_module
from aidbox_operator.runtime.backoff import backoff_delay
from aidbox_operator.runtime.cache import ObjectCache
from aidbox_operator.runtime.client import ApiError
from aidbox_operator.runtime.informer import Scope
from aidbox_operator.runtime.versions import compare_versions, is_older
from aidbox_operator.runtime.workers import Outcome, Workers
from aidbox_operator.runtime.workqueue import WorkQueue


async def test_add_after_keeps_the_earliest_time() -> None:
    queue: WorkQueue[str] = WorkQueue()
    started = time.monotonic()
    queue.add_after("k", 60.0)  # a long backoff is pending ...
    queue.add_after("k", 0.05)  # ... and a short retry must not wait behind it
    queue.add_after("k", 30.0)  # a later one changes nothing
    async with asyncio.timeout(5):
        assert await queue.get() == "k"
    assert time.monotonic() - started < 5
    queue.done("k")
    queue.forget("k")
    assert queue.idle


@pytest.mark.parametrize(
    ("a", "b", "order"),
    [
        ("5", "5", 0),
        ("9", "10", -1),  # by number, not by text
        ("100", "99", 1),
        ("123456789012345678901234567890", "123456789012345678901234567891", -1),
        ("abc", "abd", None),  # opaque: only equality is known
        ("010", "9", None),  # leading zero: not well-formed
        ("0", "1", None),  # zero is never a live version
        ("", "1", None),
        ("abc", "abc", 0),
    ],
)
def test_resource_versions_compare_only_as_the_api_allows(a: str, b: str, order: Any) -> None:
    assert compare_versions(a, b) == order
    assert is_older(a, b) == (order == -1)


def _obj(version: str, value: int) -> dict[str, Any]:
    return {"metadata": {"name": "x", "resourceVersion": version}, "value": value}


def test_cache_ignores_only_a_version_known_to_be_older() -> None:
    cache: ObjectCache[str] = ObjectCache()
    assert cache.put("k", _obj("10", 1))
    assert not cache.put("k", _obj("9", 2))  # an older watch event after a write's answer
    assert cache.get("k") == _obj("10", 1)
    assert cache.put("k", _obj("11", 3))
    # Versions the API does not let us order: the newest arrival wins.
    assert cache.put("k", _obj("opaque-a", 4))
    assert cache.put("k", _obj("opaque-b", 5))
    assert cache.get("k") == _obj("opaque-b", 5)
    stored = cache.get("k")
    assert stored is not None
    stored["value"] = 99  # a copy: the cache cannot be changed by accident
    assert cache.get("k") == _obj("opaque-b", 5)


def test_one_backoff_formula() -> None:
    assert [backoff_delay(n) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 4.0]
    assert backoff_delay(30) == 60.0
    assert backoff_delay(30, cap=30.0) == 30.0
    for _ in range(50):
        assert 0.4 <= backoff_delay(1, jitter=0.2) <= 0.6


def test_pass_results_map_to_outcomes() -> None:
    assert outcome_of(PassResult()) == Outcome()
    refused = PassResult(refused=True, blocked="ApplyFailed")
    assert outcome_of(refused) == Outcome(backoff=True, label="blocked")
    later = PassResult()
    later.look_again(5.0)
    assert outcome_of(later).requeue_after == 5.0
    problems = PassResult(problems=[("MonitoringUnavailable", "no ServiceMonitor CRD")])
    assert outcome_of(problems).requeue_after == PROBLEM_RETRY_SECONDS


async def test_workers_retry_a_failing_key_with_backoff_and_keep_the_others(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(backoff_module, "BASE_SECONDS", 0.01)  # the same doubling, faster
    calls: list[str] = []

    async def reconcile(key: str) -> Outcome:
        calls.append(key)
        if key == "bad" and calls.count("bad") < 3:
            raise ApiError(500, "InternalError", "etcd is down")
        return Outcome()

    workers: Workers[str] = Workers(reconcile, workers=2)
    workers.start()
    try:
        workers.queue.add("bad")
        workers.queue.add("good")
        async with asyncio.timeout(10):
            while calls.count("bad") < 3:  # noqa: ASYNC110 (the workers change it)
                await asyncio.sleep(0.01)
    finally:
        await workers.stop()
    assert calls.count("good") == 1
    # The third try succeeded: the failure count is gone, the next failure starts over.
    assert workers.backoff("bad") == backoff_delay(1)


def test_cluster_feed_forgets_clusters_that_vanished_while_nobody_watched() -> None:
    store = ObjectStore()
    queue: WorkQueue[Key] = WorkQueue()
    forgotten: list[Key] = []
    feed = ClusterFeed(store, queue, forgotten.append)
    for ns, name in (("a", "one"), ("a", "two"), ("b", "three")):
        feed.event("ADDED", {"metadata": {"namespace": ns, "name": name}, "spec": {}})
    assert len(queue) == 3
    feed.relisted(Scope(namespace="a"), {("a", "one")}, "42")
    assert forgotten == [("a", "two")]
    assert sorted(store.cluster_keys()) == [("a", "one"), ("b", "three")]
