"""Reading the running Aidbox version from the pods' /health (httpx, against a mock transport:
no network)."""

from __future__ import annotations

import httpx

from aidbox_operator.reconcile.aidbox_health import RETRY_SECONDS, AidboxHealth
from aidbox_operator.status import PodSummary

CLUSTER = ("default", "aidbox")


def _pod(name: str, ip: str, ready: bool = True) -> PodSummary:
    return PodSummary(name, "n", "Running", ready, "h", "", False, ip=ip, uid=f"uid-{name}")


def _transport(answers: dict[str, str], asked: list[str]) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.host)
        version = answers.get(request.url.host)
        if version is None:
            return httpx.Response(503, text="starting")
        body = {"status": "pass", "about": {"version": version, "channel": "stable"}}
        return httpx.Response(200, json=body)

    return httpx.MockTransport(handle)


async def test_versions_of_ready_pods_each_asked_once_without_holding_up_the_pass() -> None:
    asked: list[str] = []
    learned: list[tuple[str, str]] = []
    answers = {"10.0.0.1": "2510.1", "10.0.0.2": "2510.1", "10.0.0.3": "2510.2"}
    health = AidboxHealth(
        enabled=True, transport=_transport(answers, asked), on_learned=learned.append
    )
    pods = [_pod("a", "10.0.0.1"), _pod("b", "10.0.0.2"), _pod("c", "10.0.0.3")]
    assert await health.versions(CLUSTER, pods, 8080) == ()  # reads started, none awaited
    await health.settled()
    assert learned == [CLUSTER] * 3  # each answer queues the cluster for another pass
    assert await health.versions(CLUSTER, pods, 8080) == (("2510.1", 2), ("2510.2", 1))
    await health.settled()
    assert sorted(asked) == ["10.0.0.1", "10.0.0.2", "10.0.0.3"]  # cached for the pods' life
    assert await health.versions(CLUSTER, pods[:2], 8080) == (("2510.1", 2),)
    await health.close()


async def test_a_deleted_cluster_is_not_brought_back_by_a_late_answer() -> None:
    learned: list[tuple[str, str]] = []
    health = AidboxHealth(
        enabled=True, transport=_transport({"10.0.0.1": "2510"}, []), on_learned=learned.append
    )
    await health.versions(CLUSTER, [_pod("a", "10.0.0.1")], 8080)
    health.forget(CLUSTER)
    await health.settled()
    assert learned == []
    assert await health.versions(CLUSTER, [], 8080) == ()
    await health.close()


async def test_unanswered_pods_are_not_counted_and_asked_again_only_after_a_while() -> None:
    asked: list[str] = []
    answers: dict[str, str] = {}
    now = [100.0]
    health = AidboxHealth(enabled=True, transport=_transport(answers, asked), clock=lambda: now[0])
    pods = [_pod("a", "10.0.0.1"), _pod("b", "10.0.0.2", ready=False)]
    assert await health.versions(CLUSTER, pods, 8080) == ()
    await health.settled()
    answers["10.0.0.1"] = "2602"
    # An unreachable pod would otherwise be read again on every pass of its cluster.
    now[0] += RETRY_SECONDS - 1
    assert await health.versions(CLUSTER, pods, 8080) == ()
    await health.settled()
    now[0] += 1
    await health.versions(CLUSTER, pods, 8080)
    await health.settled()
    assert await health.versions(CLUSTER, pods, 8080) == (("2602", 1),)
    assert asked == ["10.0.0.1", "10.0.0.1"]  # never the unready pod
    await health.close()


async def test_off_means_no_request_at_all() -> None:
    asked: list[str] = []
    health = AidboxHealth(enabled=False, transport=_transport({"10.0.0.1": "2510"}, asked))
    assert await health.versions(CLUSTER, [_pod("a", "10.0.0.1")], 8080) == ()
    assert asked == []
