"""What the Aidbox pods themselves say: the version each ready pod reports on /health.

Read over HTTP (httpx) from the pods' addresses, which only an operator running inside the
cluster can reach: elsewhere (a laptop, the sandbox's simulated pods) reading is off, so no
request ever goes to an address outside the cluster network. A pod's answer is kept for the
pod's life (its image cannot change), so each pod is asked once.

A pass never waits for a pod: it reports what is known and starts reads for the pods not asked
yet; an answer queues the cluster for another pass (`on_learned`). A pod that does not answer
(a NetworkPolicy, a pod network the operator is not on) is asked again only after
RETRY_SECONDS.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

import httpx

from aidbox_operator.status import PodSummary

log = logging.getLogger(__name__)
READ_TIMEOUT_SECONDS = 2.0
RETRY_SECONDS = 30.0
Key = tuple[str, str]


class AidboxHealth:
    def __init__(
        self,
        enabled: bool,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_learned: Callable[[Key], None] = lambda key: None,
    ) -> None:
        self.enabled = enabled
        self._transport = transport
        self._clock = clock
        self._on_learned = on_learned
        self._client: httpx.AsyncClient | None = None
        # cluster -> pod uid -> about.version, for the pods that cluster has now
        self._versions: dict[Key, dict[str, str]] = {}
        # cluster -> pod uid -> when that pod last failed to answer
        self._failed: dict[Key, dict[str, float]] = {}
        self._reading: dict[tuple[Key, str], asyncio.Task[None]] = {}

    async def close(self) -> None:
        for task in list(self._reading.values()):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._client is not None:
            await self._client.aclose()

    async def settled(self) -> None:
        """Until every read under way has ended (tests)."""
        while self._reading:
            await asyncio.gather(*self._reading.values(), return_exceptions=True)

    async def versions(
        self, cluster: Key, pods: Iterable[PodSummary], port: int
    ) -> tuple[tuple[str, int], ...]:
        """Version -> ready pods known to report it; reads the pods not asked before."""
        if not self.enabled:
            return ()
        ready = {p.uid: p for p in pods if p.ready and not p.terminating and p.uid and p.ip}
        known = {u: v for u, v in self._versions.get(cluster, {}).items() if u in ready}
        now = self._clock()
        failed = {
            u: at
            for u, at in self._failed.get(cluster, {}).items()
            if u in ready and now - at < RETRY_SECONDS
        }
        self._versions[cluster], self._failed[cluster] = known, failed
        for uid, pod in ready.items():
            if uid not in known and uid not in failed and (cluster, uid) not in self._reading:
                task = asyncio.create_task(self._learn(cluster, pod, port))
                self._reading[(cluster, uid)] = task
        return tuple(sorted(Counter(known.values()).items()))

    def forget(self, cluster: Key) -> None:
        self._versions.pop(cluster, None)
        self._failed.pop(cluster, None)

    async def _learn(self, cluster: Key, pod: PodSummary, port: int) -> None:
        try:
            version = await self._read(pod, port)
        finally:
            self._reading.pop((cluster, pod.uid), None)
        if cluster not in self._versions:
            return  # the cluster was deleted meanwhile
        if not version:
            self._failed[cluster][pod.uid] = self._clock()
            return
        self._versions[cluster][pod.uid] = version
        self._on_learned(cluster)

    async def _read(self, pod: PodSummary, port: int) -> str:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=READ_TIMEOUT_SECONDS, transport=self._transport, trust_env=False
            )
        try:
            response = await self._client.get(f"http://{pod.ip}:{port}/health")
            body: Any = response.json()
            return str(body["about"]["version"])
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as err:
            # Not fatal: a pass after RETRY_SECONDS asks again.
            log.debug("could not read /health of pod %s: %s", pod.name, err)
            return ""
