"""Kubernetes Events about an AidboxCluster. Called only for real changes and transitions,
so nothing repeats in a loop."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from typing import Any

from aidbox_operator.model.constants import FIELD_MANAGER
from aidbox_operator.reconcile.kube import EVENTS, ApiError, KubeClient, NotLeaderError

log = logging.getLogger(__name__)
MAX_MESSAGE = 1024


class EventRecorder:
    """Posts Events in the background: a reconcile does not wait for them."""

    def __init__(self, client: KubeClient, concurrency: int = 16) -> None:
        self._client = client
        self._instance = os.environ.get("POD_NAME") or socket.gethostname()
        self._slots = asyncio.Semaphore(concurrency)
        self._pending: set[asyncio.Task[None]] = set()

    async def record(
        self, cluster: dict[str, Any], type_: str, reason: str, message: str, now: str
    ) -> None:
        task = asyncio.create_task(self._post(cluster, type_, reason, message, now))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def drain(self) -> None:
        """Wait for Events still being posted (at shutdown)."""
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

    async def _post(
        self, cluster: dict[str, Any], type_: str, reason: str, message: str, now: str
    ) -> None:
        meta = cluster["metadata"]
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": cluster["apiVersion"],
                "kind": cluster["kind"],
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta.get("uid"),
            },
            "type": type_,
            "reason": reason,
            "message": message[:MAX_MESSAGE],
            "source": {"component": FIELD_MANAGER},
            "reportingComponent": FIELD_MANAGER,
            "reportingInstance": self._instance[:128],
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        log_fn = log.warning if type_ == "Warning" else log.info
        log_fn(
            "%s: %s",
            reason,
            message,
            extra={"namespace": meta["namespace"], "cluster": meta["name"]},
        )
        try:
            async with self._slots:
                await self._client.request(
                    "POST", EVENTS.path(meta["namespace"]), body=event, verb="create"
                )
        except (ApiError, OSError, TimeoutError, NotLeaderError) as err:
            # An Event is a courtesy: failing to post one must not fail the reconcile. In a
            # namespace being deleted nothing can be created, which is expected.
            level = logging.DEBUG if "being terminated" in str(err) else logging.WARNING
            log.log(level, "could not post event %s: %s", reason, err)
