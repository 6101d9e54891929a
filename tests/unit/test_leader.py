"""Leader election timing (pure: an in-memory Lease, the real monotonic clock, short timings).

The fault suite (tests/faults) proves the same against a real API server; these pin down the
rules: any failure stops leading, leadership ends by the renew deadline even while a renewal
hangs, winning again starts over (the controller resyncs), and the client guard refuses
writes, unsent, while not leading.
"""

from __future__ import annotations

import asyncio
import copy
import time
from typing import Any

import pytest

from aidbox_operator.runtime.client import KubeClient, NotLeaderError
from aidbox_operator.runtime.kinds import CONFIGMAPS, ResourceKind
from aidbox_operator.runtime.leader import ElectionTiming, LeaderElector

TIMING = ElectionTiming(lease_duration=0.75, renew_deadline=0.5, retry_period=0.05)


class MemoryLeases:
    """The two calls the elector makes, on one in-memory Lease; `fault` breaks them."""

    def __init__(self) -> None:
        self.lease: dict[str, Any] | None = None
        self.version = 0
        self.fault: str = ""  # "", "error" (any exception) or "hang"
        self.request_timeout = 5.0

    async def _maybe_fail(self) -> None:
        if self.fault == "error":
            raise RuntimeError("connection reset by peer (or anything else)")
        if self.fault == "hang":
            await asyncio.sleep(3600)

    async def get(self, kind: ResourceKind, namespace: str, name: str) -> dict[str, Any] | None:
        await self._maybe_fail()
        return copy.deepcopy(self.lease)

    async def request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        await self._maybe_fail()
        body = copy.deepcopy(kwargs["body"])
        if method == "PUT":
            assert self.lease is not None
            assert body["metadata"].get("resourceVersion") == str(self.version)
        self.version += 1
        body["metadata"]["resourceVersion"] = str(self.version)
        self.lease = body
        return body


class StandbyView:
    """The same Lease as seen by one elector, with the times it read it."""

    def __init__(self, leases: MemoryLeases) -> None:
        self.leases = leases
        self.request_timeout = leases.request_timeout
        self.reads: list[float] = []

    async def get(self, kind: ResourceKind, namespace: str, name: str) -> dict[str, Any] | None:
        self.reads.append(time.monotonic())
        return await self.leases.get(kind, namespace, name)

    async def request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        return await self.leases.request(method, path, **kwargs)

    def span(self) -> float:
        return self.reads[-1] - self.reads[0] if self.reads else 0.0


async def _elector(leases: MemoryLeases) -> tuple[LeaderElector, list[tuple[str, float]]]:
    calls: list[tuple[str, float]] = []
    elector = LeaderElector(
        leases,  # type: ignore[arg-type]
        "ns",
        "lease",
        "me",
        TIMING,
        on_started=lambda: calls.append(("started", time.monotonic())),
        on_stopped=lambda: calls.append(("stopped", time.monotonic())),
    )
    return elector, calls


async def _until(predicate: Any) -> None:
    """Polls plain attributes (nothing to wait on) for at most 5 s."""
    async with asyncio.timeout(5.0):
        while True:
            if predicate():
                return
            await asyncio.sleep(0.01)


def test_timing_follows_client_go() -> None:
    assert ElectionTiming() == ElectionTiming(15, 10, 2)
    assert ElectionTiming.for_lease(15) == ElectionTiming(15, 10, 2)
    with pytest.raises(ValueError):
        ElectionTiming(10, 10, 2)
    with pytest.raises(ValueError):
        ElectionTiming(15, 10, 9)


@pytest.mark.parametrize("fault", ["error", "hang"])
async def test_leadership_ends_by_the_renew_deadline_whatever_the_failure(fault: str) -> None:
    leases = MemoryLeases()
    elector, calls = await _elector(leases)
    task = asyncio.create_task(elector.run())
    try:
        await _until(lambda: elector.leading)
        leases.fault = fault
        # Never later than the renew deadline after the last renewal started, which was before
        # now. `leading` reads the clock, so waking up late (a loaded machine) cannot make a
        # correct elector fail this, while one that leads past the deadline always does.
        await asyncio.sleep(TIMING.renew_deadline + 0.01)
        assert not elector.leading and not elector.may_write()
        await _until(lambda: [c for c, _ in calls] == ["started", "stopped"])
        assert not elector.may_write()
        # The network heals: the lease still names this replica, so it leads again at once,
        # and the controller is told to start over (a full resync).
        leases.fault = ""
        await _until(lambda: [c for c, _ in calls] == ["started", "stopped", "started"])
        assert elector.may_write()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_standby_waits_a_lease_duration_from_its_own_observation() -> None:
    leases = MemoryLeases()
    leader, _ = await _elector(leases)
    leading = asyncio.create_task(leader.run())
    await _until(lambda: leader.leading)
    looks = StandbyView(leases)
    standby = LeaderElector(looks, "ns", "lease", "other", TIMING)  # type: ignore[arg-type]
    standing = asyncio.create_task(standby.run())
    try:
        # Proof the standby would have taken over an unrenewed lease: it looked again more
        # than a lease duration after its first look. Renewals kept it out.
        await _until(lambda: looks.span() > TIMING.lease_duration)
        assert leader.leading and not standby.leading

        async def crash() -> None:  # dies without handing the lease back
            return None

        leader.release = crash  # type: ignore[method-assign]
        leading.cancel()
        await asyncio.gather(leading, return_exceptions=True)
        stopped = time.monotonic()
        await _until(lambda: standby.leading)
        assert time.monotonic() - stopped >= TIMING.lease_duration - TIMING.retry_period * 1.2
    finally:
        standing.cancel()
        await asyncio.gather(standing, return_exceptions=True)


class RecordingApi:
    """Just enough of kubernetes.aio's ApiClient for KubeClient to send through."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []
        self.default_headers: dict[str, str] = {}
        self.configuration = type("C", (), {"host": "https://api"})()
        self.rest_client = self

    async def update_params_for_auth(self, *args: Any) -> None:
        return None

    async def request(self, method: str, url: str, **_: Any) -> Any:
        self.sent.append((method, url))
        return self

    status, reason = 200, "OK"

    async def read(self) -> bytes:
        return b"{}"


async def test_the_guard_refuses_writes_unsent_but_lets_reads_and_the_lease_through() -> None:
    api = RecordingApi()
    kube = KubeClient(api, "test")  # type: ignore[arg-type]
    kube.may_write = lambda: False
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "n"}}
    for write in (
        kube.apply(CONFIGMAPS, cm),
        kube.request("POST", "/api/v1/namespaces/n/events", body={}),
        kube.request("DELETE", "/api/v1/namespaces/n/secrets/x"),
        kube.request("PATCH", "/api/v1/namespaces/n/secrets/x", body={}),
    ):
        with pytest.raises(NotLeaderError):
            await write
    assert api.sent == []
    await kube.request("GET", "/api/v1/namespaces/n/secrets/x")
    await kube.request("PUT", "/apis/coordination.k8s.io/v1/leases/x", body={}, verb="lease")
    assert [m for m, _ in api.sent] == ["GET", "PUT"]
