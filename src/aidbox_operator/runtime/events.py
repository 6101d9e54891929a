"""Kubernetes Events about the objects a controller manages, posted in the background. Callers
post only real changes and transitions, so nothing repeats in a loop."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from typing import Any

from aidbox_operator.runtime.client import ApiError, KubeClient, NotLeaderError
from aidbox_operator.runtime.kinds import EVENTS

log = logging.getLogger(__name__)
MAX_MESSAGE = 1024


CLUSTER_SCOPED_EVENTS_NAMESPACE = "default"


class EventRecorder:
    """Posts Events in the background: a reconcile does not wait for them."""

    def __init__(
        self, client: KubeClient, component: str, log_key: str = "object", concurrency: int = 16
    ) -> None:
        self._client = client
        self._component = component
        # The log record attribute that names the object (the log formatter prints it).
        self._log_key = log_key
        self._instance = os.environ.get("POD_NAME") or socket.gethostname()
        self._slots = asyncio.Semaphore(concurrency)
        self._pending: set[asyncio.Task[None]] = set()

    async def record(
        self, subject: dict[str, Any], type_: str, reason: str, message: str, now: str
    ) -> None:
        task = asyncio.create_task(self._post(subject, type_, reason, message, now))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def drain(self) -> None:
        """Wait for Events still being posted (at shutdown)."""
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

    async def _post(
        self, subject: dict[str, Any], type_: str, reason: str, message: str, now: str
    ) -> None:
        meta = subject["metadata"]
        # A cluster-scoped subject's Events go to "default", as kubectl looks for them there.
        namespace = meta.get("namespace") or CLUSTER_SCOPED_EVENTS_NAMESPACE
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": namespace},
            "involvedObject": {
                "apiVersion": subject["apiVersion"],
                "kind": subject["kind"],
                "name": meta["name"],
                "namespace": meta.get("namespace", ""),
                "uid": meta.get("uid"),
            },
            "type": type_,
            "reason": reason,
            "message": message[:MAX_MESSAGE],
            "source": {"component": self._component},
            "reportingComponent": self._component,
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
            extra={"namespace": meta.get("namespace", ""), self._log_key: meta["name"]},
        )
        try:
            async with self._slots:
                await self._client.request(
                    "POST", EVENTS.path(namespace), body=event, verb="create"
                )
        except (ApiError, OSError, TimeoutError, NotLeaderError) as err:
            # An Event is a courtesy: failing to post one must not fail the reconcile. In a
            # namespace being deleted nothing can be created, which is expected.
            level = logging.DEBUG if "being terminated" in str(err) else logging.WARNING
            log.log(level, "could not post event %s: %s", reason, err)
