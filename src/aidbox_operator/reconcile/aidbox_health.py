"""What the Aidbox pods themselves say: the version each ready pod reports on /health.

Read over HTTP (httpx) from the pods' addresses, which only an operator running inside the
cluster can reach: elsewhere (a laptop, the sandbox's simulated pods) reading is off, so no
request ever goes to an address outside the cluster network. A pod's answer is kept for the
pod's life (its image cannot change), so each pod is asked once.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Iterable
from typing import Any

import httpx

from aidbox_operator.status import PodSummary

log = logging.getLogger(__name__)
READ_TIMEOUT_SECONDS = 2.0


class AidboxHealth:
    def __init__(self, enabled: bool, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.enabled = enabled
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        # cluster -> pod uid -> about.version, for the pods that cluster has now
        self._versions: dict[tuple[str, str], dict[str, str]] = {}

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    async def versions(
        self, cluster: tuple[str, str], pods: Iterable[PodSummary], port: int
    ) -> tuple[tuple[str, int], ...]:
        """Version -> ready pods reporting it, asking only pods not asked before."""
        if not self.enabled:
            return ()
        ready = [p for p in pods if p.ready and not p.terminating and p.uid and p.ip]
        known = {
            uid: v
            for uid, v in self._versions.get(cluster, {}).items()
            if uid in {p.uid for p in ready}
        }
        unknown = [p for p in ready if p.uid not in known]
        answers = await asyncio.gather(*(self._read(p, port) for p in unknown))
        known |= {pod.uid: v for pod, v in zip(unknown, answers, strict=True) if v}
        self._versions[cluster] = known
        return tuple(sorted(Counter(known.values()).items()))

    def forget(self, cluster: tuple[str, str]) -> None:
        self._versions.pop(cluster, None)

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
            # Not fatal: the next pass (a pod event) asks again.
            log.debug("could not read /health of pod %s: %s", pod.name, err)
            return ""
